"""Emergencies in other languages: recall and false alarms per language, and how often the language is identified right.

The sets live in tests/multilingual/ (see its README): per language `escalate` messages (acute
danger or self-harm now) and `other` messages (questions, thanks, past events, hyperbole, news),
`mixed.yml` (German or English mixed with another language) and `langid.yml` (short messages, for
identification only). They were written by someone who did not write the rules.

    python -m nlu.eval_languages            # the safety nets and identification, no model needed
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SETS = ROOT / "tests" / "multilingual"


@dataclass
class LanguageScores:
    """One language's figures: escalation recall, false alarms, and the misses by kind."""

    language: str
    escalate: int
    other: int
    recall: float
    false_alarms: float
    handed_over: float  # `other` messages that went to a person in the language (not to the German model)
    missed_kinds: dict[str, int] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)  # texts (our own test messages, fine to print)
    alarms: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One console line."""
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.missed_kinds.items())) or "-"
        return (f"{self.language:5} escalation recall {self.recall:6.1%} ({self.escalate - len(self.missed)}/{self.escalate})"
                f"  false alarms {self.false_alarms:5.1%} ({len(self.alarms)}/{self.other})"
                f"  handed over in the language {self.handed_over:6.1%}  missed by kind: {kinds}")


@dataclass
class IdScores:
    """Language identification: right overall, on messages of three words or more, per language."""

    overall: float
    three_words: float
    per_language: dict[str, float]
    wrong: list[tuple[str, str, str]]  # (expected, identified, text)
    p50_ms: float
    p99_ms: float

    def line(self) -> str:
        """One console line."""
        worst = ", ".join(f"{k} {v:.0%}" for k, v in sorted(self.per_language.items(), key=lambda kv: kv[1])[:3])
        return (f"language id: right {self.overall:.1%} overall, {self.three_words:.1%} on 3+ words"
                f" (worst: {worst}); {self.p50_ms:.2f} ms p50, {self.p99_ms:.2f} ms p99")


def read(path: Path) -> dict:
    """One YAML file of the sets."""
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def language_files(folder: Path = SETS) -> list[Path]:
    """The per-language files (not mixed.yml or langid.yml)."""
    return [p for p in sorted(folder.glob("*.yml")) if p.stem not in ("mixed", "langid")]


async def score_language(triage: object, path: Path) -> LanguageScores:
    """Every message of one language file through triage as a first message."""
    from bot.decision import Context

    doc = read(path)
    code = str(doc.get("language") or path.stem)
    missed, kinds, alarms, handed = [], {}, [], 0
    for item in doc.get("escalate") or []:
        decision = await triage.decide(item["text"], Context())  # type: ignore[attr-defined]
        if decision.action != "escalate":
            missed.append(item["text"])
            kinds[item.get("kind", "-")] = kinds.get(item.get("kind", "-"), 0) + 1
    others = doc.get("other") or []
    for item in others:
        decision = await triage.decide(item["text"], Context())  # type: ignore[attr-defined]
        if decision.action == "escalate":
            alarms.append(item["text"])
        handed += decision.action == "handover" and decision.language == code
    n_escalate = len(doc.get("escalate") or [])
    return LanguageScores(code, n_escalate, len(others), 1 - len(missed) / n_escalate if n_escalate else 1.0,
                          len(alarms) / len(others) if others else 0.0, handed / len(others) if others else 0.0,
                          kinds, missed, alarms)


def score_identification(identify: object, path: Path) -> IdScores:
    """Identification on langid.yml (and mixed.yml's expected languages, when present)."""
    items = [(i["language"], i["text"]) for i in read(path) or []] if path.is_file() else []
    mixed = path.with_name("mixed.yml")
    if mixed.is_file():
        items += [(i["expected_language"], i["text"]) for i in read(mixed) or []]
    right, long_right, long_n, per, wrong, times = 0, 0, 0, {}, [], []
    for expected, text in items:
        started = time.perf_counter()
        found = identify(text, "de")  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
        ok = found == expected
        right += ok
        if len(text.split()) >= 3:
            long_n += 1
            long_right += ok
        hits, total = per.get(expected, (0, 0))
        per[expected] = (hits + ok, total + 1)
        if not ok:
            wrong.append((expected, found, text))
    times.sort()
    return IdScores(right / len(items) if items else 0.0, long_right / long_n if long_n else 0.0,
                    {k: h / t for k, (h, t) in per.items()}, wrong,
                    statistics.median(times) if times else 0.0, times[int(0.99 * (len(times) - 1))] if times else 0.0)


async def measure(triage: object, folder: Path = SETS) -> tuple[list[LanguageScores], IdScores | None]:
    """All languages' scores and the identification scores (None without langid.yml)."""
    scores = [await score_language(triage, path) for path in language_files(folder)]
    langid = folder / "langid.yml"
    ids = score_identification(triage.identify, langid) if langid.is_file() else None  # type: ignore[attr-defined]
    return scores, ids


def main(argv: list[str] | None = None) -> int:
    """Print one line per language and one for identification; --verbose lists the misses."""
    from bot.services import build_triage
    from bot.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=Path, default=SETS)
    parser.add_argument("--verbose", action="store_true", help="print the missed emergencies and the false alarms")
    args = parser.parse_args(argv)
    if not language_files(args.sets):
        print(f"no multilingual sets in {args.sets}", file=sys.stderr)
        return 1
    scores, ids = asyncio.run(measure(build_triage(Settings.from_env()), args.sets))
    for s in scores:
        print(s.line())
        if args.verbose:
            print("".join(f"   missed: {t}\n" for t in s.missed) + "".join(f"   alarm:  {t}\n" for t in s.alarms), end="")
    if ids is not None:
        print(ids.line())
        if args.verbose:
            print("".join(f"   {e} -> {f}: {t}\n" for e, f, t in ids.wrong), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
