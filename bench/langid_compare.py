"""Compare language identifiers on short phone-style messages (bench/langid_dev.yml) and time streife's own.

Each candidate runs in its own process (so its RSS is its own), restricted to our nine languages
("ours") and with about twenty more ("wide": French, Spanish, Croatian ... are then noticed instead
of being forced into ours). Candidates that are not installed are skipped. `streife` is
bot.language.LanguageId (lingua plus marker words and letters), with the marker words of
data/languages/*.yml (`--markers data`, the bench's list for a language without a file), the bench's
lists below (`bench`) or those plus short shared words (`stress`); it keeps the default for one word.
`--german-english` instead counts German/English training and test examples taken for another language.

Run: <venv>/bin/python -m bench.langid_compare [--only NAME ...] [--markers data|bench|stress] [--wrong]
     <venv>/bin/python -m bench.langid_compare --german-english [--markers ...] [--wrong]
(all candidates: a scratch venv with lingua-language-detector py3langid cld3-py pycld2 pyyaml)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
OURS = ("de", "en", "tr", "ar", "ru", "uk", "pl", "ro", "fa")
MORE = ("fr", "es", "it", "pt", "nl", "da", "sv", "cs", "sk", "hu", "hr", "sr", "bs", "sl", "sq", "bg", "el", "az", "ur", "ku")
MARKERS = "data"  # which marker words `streife` uses (--markers)
CANDIDATES = ("lingua", "lingua-low", "py3langid", "cld3", "pycld2", "streife")
_WORD = re.compile(r"[^\W\d_]+(?:\d+[^\W\d_]+)*|[^\W\d_]*\d+[^\W\d_]+", re.UNICODE)
# Marker words for `streife` when data/languages/ has none yet (phone spellings, folded, not German/English).
BENCH_MARKERS = {
    "tr": "yardim edin lutfen polis acil kocam karim beni bana benim bir var yok mu ne nasil neden simdi "
          "cok korkuyorum istiyorum istemiyorum calindi merhaba selam tesekkurler tesekkur ederim abi abla "
          "kardesim annem babam evde burda burada lazim bilmiyorum degil icin ile",
    "ar": "ana enta enti inta anta huwa hiya fi ma mish msh bdi bade biddi 3am ktir kteer shukran marhaba "
          "salam alaikum yalla wallah inshallah habibi sa3dni sa3edni sa3douni mosa3ade musaada shorta "
          "zawji jozi 3ayez 3ayza momken ya rab wen fen hada 7ada hay haida ibni binti khayfe khayef",
    "ru": "pomogite pomoshch pozhaluysta menya mne moy moya muzh zhena ukrali ukral strashno ochen "
          "privet zdravstvuyte spasibo bolshoe kto chto gde kak pochemu seychas ya ne hochu khochu "
          "nuzhna nuzhno policiya politsiya bjet byet nozhom domoj domoy esli blin",
    "uk": "dopomozhit dopomoha dopomohy bud laska mene meni moya miy cholovik druzhyna vkraly strashno "
          "duzhe pryvit dobryi dobryy den dyakuyu diakuiu khto shcho de yak chomu zaraz ya ne khochu "
          "potribna politsiia politsiya dodomu yakshcho vin vona",
    "pl": "pomocy pomoz prosze policja maz zona mnie mi moj moja ukradli ukradl boje sie bardzo "
          "czesc dzien dobry dziekuje dzieki kto co gdzie jak dlaczego teraz nie chce jest mam "
          "potrzebuje zgubilem zgubilam kurwa siema juz",
    "ro": "ajutor va rog politia politie sotul sotia meu mea ma mi au furat frica foarte buna ziua "
          "salut multumesc mersi cine ce unde cum de ce acum nu vreau vorbesc am nevoie este sunt "
          "pierdut acasa si pentru",
    "fa": "komak konid lotfan polis shoharam zanam man mano mara to ma dozdidan mitarsam kheili "
          "salam merci mamnoon mamnun ki chi koja chera alan nemikham mikham hast nist "
          "dare daram chikar konam bashe khoone gooshim ye",
}

# Short frequent words a marker list might well contain although German or English has them too (or
# they are a letter or two): `--markers stress` adds them, to see that German and English stay put.
STRESS = {
    "tr": "ne bu o ve da de ki mi bir ben sen biz var yok ama cok", "ar": "ana ma fi la ya w el bas wala ahla",
    "ru": "ya ne on v i a ty my vy kak da net tak vse", "uk": "ya ne vin i de ta tak ni my vy",
    "pl": "i a w z na do to nie tak jak co ma mi ale jest sie",
    "ro": "si e o un la de ce nu da am ma mi cu in pe sa",
    "fa": "man to ma shoma in an va ba az ke ye chi ki bad",
}


def words_of(text: str) -> int:
    """How many words a message has (letters, with digits inside a word as in "sa3dni")."""
    return len(_WORD.findall(text))


def load_dev(path: Path) -> list[dict[str, str]]:
    """The dev set's messages: [{language, text}]."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))["messages"]


def rss_mb() -> float:
    """This process's resident memory in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def markers(kind: str = "data") -> dict[str, list[str]]:
    """Marker words per language: "data" reads data/languages/*.yml (BENCH_MARKERS for a language without a
    file), "bench" only BENCH_MARKERS, "stress" BENCH_MARKERS plus STRESS."""
    found = {code: words.split() + (STRESS[code].split() if kind == "stress" else []) for code, words in BENCH_MARKERS.items()}
    for path in sorted((ROOT / "data" / "languages").glob("*.yml")) if kind == "data" else []:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if doc.get("markers"):
            found[str(doc["code"])] = [str(m) for m in doc["markers"]]
    return found


def build(name: str, langs: tuple[str, ...]) -> Callable[[str], str | None]:
    """Load candidate `name` for `langs`; return text -> ISO 639-1 code (or None: no answer)."""
    allowed = set(langs)
    if name in ("lingua", "lingua-low"):
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        codes = [getattr(IsoCode639_1, c.upper()) for c in langs if hasattr(IsoCode639_1, c.upper())]
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes).with_preloaded_language_models()
        detector = (builder.with_low_accuracy_mode() if name == "lingua-low" else builder).build()

        def lingua(text: str) -> str | None:
            found = detector.detect_language_of(text)
            return found.iso_code_639_1.name.lower() if found is not None else None
        return lingua
    if name == "py3langid":
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        identifier.set_languages([c for c in langs if c in identifier.nb_classes])
        return lambda text: identifier.classify(text)[0]
    if name == "cld3":
        import gcld3

        nnet = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)

        def cld3(text: str) -> str | None:
            for result in [nnet.FindLanguage(text=text)] + list(nnet.FindTopNMostFreqLangs(text=text, num_langs=3)):
                code = {"iw": "he"}.get(result.language.split("-")[0], result.language.split("-")[0])
                if code in allowed:
                    return code
            return None
        return cld3
    if name == "pycld2":
        import pycld2

        def cld2(text: str) -> str | None:
            try:
                details = pycld2.detect(text, bestEffort=True)[2]
            except pycld2.error:
                return None
            return next((code for _, code, _, _ in details if code in allowed), None)
        return cld2
    if name == "streife":
        from bot.language import LanguageId

        identifier = LanguageId(markers(MARKERS))
        return lambda text: identifier.identify(text, "--")
    raise ValueError(f"unknown candidate {name!r}")


def installed(name: str) -> bool:
    """Whether the candidate's package can be imported here."""
    module = {"lingua-low": "lingua", "cld3": "gcld3", "streife": "bot.language"}.get(name, name)
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def worker(name: str, mode: str, dev: Path) -> dict[str, object]:
    """Load one candidate, run the dev set, time it (and long texts for `streife`); report as a dict."""
    messages = load_dev(dev)
    before = rss_mb()
    started = time.perf_counter()
    predict = build(name, OURS if mode == "ours" else OURS + MORE)
    loaded = time.perf_counter() - started
    after = rss_mb()
    predict("warm up")
    answers, seconds = [], []
    for message in messages:
        t0 = time.perf_counter()
        answers.append(predict(message["text"]))
        seconds.append(time.perf_counter() - t0)
    long_seconds = []
    if name == "streife":
        samples = [m["text"] for m in messages if words_of(m["text"]) >= 3]
        for sample in samples:
            text = (sample + ". ") * (4000 // (len(sample) + 2) + 1)
            t0 = time.perf_counter()
            predict(text[:4000])
            long_seconds.append(time.perf_counter() - t0)
    return {"answers": answers, "seconds": seconds, "long": long_seconds, "rss_before": before,
            "rss_after": rss_mb(), "rss_loaded": after, "load_s": loaded}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def score(messages: list[dict[str, str]], answers: list[str | None], streife: bool) -> dict[str, object]:
    """Accuracy on our languages (all, 3+ words), per language (3+ words), others not forced into ours."""
    right = defaultdict(lambda: [0, 0])
    wrong: list[str] = []
    for message, answer in zip(messages, answers):
        lang, text = message["language"], message["text"]
        long_enough = words_of(text) >= 3
        if lang not in OURS:
            ok = answer not in (OURS[2:] if streife else OURS)  # streife answers de/en/default then
            right["other"][0] += ok
            right["other"][1] += 1
            if not ok:
                wrong.append(f"{lang}->{answer}: {text}")
            continue
        ok = answer == lang or (streife and not long_enough and answer == "--")  # streife: short -> default
        for key in ("all", lang + "3" if long_enough else None, "3+" if long_enough else None):
            if key:
                right[key][0] += ok
                right[key][1] += 1
        if not ok:
            wrong.append(f"{lang}->{answer}: {text}")
    return {"right": dict(right), "wrong": wrong}


def german_english(show: bool, kind: str) -> None:
    """Run streife's identify over every German/English example in data/nlu/*.yml and tests/test_nlu.yml."""
    from bot.language import LanguageId
    from nlu.examples import read_examples

    identifier = LanguageId(markers(kind))
    paths = sorted((ROOT / "data" / "nlu").glob("*.yml")) + [ROOT / "tests" / "test_nlu.yml"]
    examples = [e for path in paths for e in read_examples(path)]
    foreign = [(e, found) for e in examples if (found := identifier.identify(e.text, "de")) not in ("de", "en")]
    files = sorted(p.stem for p in (ROOT / "data" / "languages").glob("*.yml")) if kind == "data" else []
    print(f"German/English examples identified as another language: {len(foreign)} of {len(examples)}"
          f" (markers {kind}{': from data/languages/ for ' + ', '.join(files) if files else ''};"
          f" words per language after folding: {', '.join(f'{c} {len(w)}' for c, w in identifier.markers.items())})")
    for example, found in foreign if show else []:
        print(f"  {found}: {example.text}  ({example.path.relative_to(ROOT)}:{example.line})")


def run(candidates: list[str], dev: Path, show_wrong: bool) -> None:
    """Run every installed candidate in both modes, each in its own process; print the tables."""
    messages = load_dev(dev)
    rows, per_language = [], []
    for name in candidates:
        if not installed(name):
            print(f"skipped {name}: not installed", file=sys.stderr)
            continue
        for mode in ("ours",) if name == "streife" else ("ours", "wide"):
            out = subprocess.run([sys.executable, "-m", "bench.langid_compare", "--worker", name, mode, "--dev", str(dev),
                                  "--markers", MARKERS],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.splitlines()[-1])
            scored = score(messages, result["answers"], name == "streife")
            right = scored["right"]
            pct = lambda key: f"{100 * right[key][0] / right[key][1]:.1f} ({right[key][0]}/{right[key][1]})" if key in right else "-"
            us = [s * 1e6 for s in result["seconds"]]
            rows.append(f"| {name} | {mode} | {pct('all')} | {pct('3+')} | {pct('other')} | "
                        f"{statistics.median(us):.0f} / {percentile(us, 99):.0f} | "
                        f"{result['rss_loaded']:.0f} / {result['rss_after']:.0f} (+{result['rss_after'] - result['rss_before']:.0f}) | {result['load_s']:.2f} |")
            per_language.append(f"| {name} | {mode} | " + " | ".join(
                f"{right[c + '3'][0]}/{right[c + '3'][1]}" for c in OURS) + " |")
            if result["long"]:
                ms = [s * 1e3 for s in result["long"]]
                rows.append(f"| {name} | 4,000 chars (n={len(ms)}) | | | | {statistics.median(ms):.1f} / {percentile(ms, 99):.1f} ms | | |")
            if show_wrong:
                print(f"## {name} {mode} wrong:\n  " + "\n  ".join(scored["wrong"]) + "\n")
    counts = defaultdict(int)
    for m in messages:
        counts[m["language"] if m["language"] in OURS else "other"] += 1
    print(f"dev set {dev.relative_to(ROOT) if dev.is_relative_to(ROOT) else dev}: {len(messages)} messages, "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("\n| candidate | languages | right, all | right, 3+ words | others not forced into ours | µs per message p50 / p99 | RSS MB loaded / after the dev set (+ over the bare process) | load s |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nRight on 3+ words, per language:\n")
    print("| candidate | languages | " + " | ".join(OURS) + " |")
    print("|---|---|" + "---|" * len(OURS))
    print("\n".join(per_language))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=ROOT / "bench" / "langid_dev.yml")
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument("--markers", choices=("data", "bench", "stress"), default="data",
                        help="marker words for streife: data/languages (else the bench's), the bench's, or the bench's plus STRESS")
    parser.add_argument("--wrong", action="store_true", help="list each wrong answer")
    parser.add_argument("--german-english", action="store_true", help="only count German/English training and test examples identified as another language")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global MARKERS
    MARKERS = args.markers
    if args.german_english:
        german_english(args.wrong, args.markers)
    elif args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.dev)))
    else:
        run(args.only, args.dev.resolve(), args.wrong)


if __name__ == "__main__":
    main()
