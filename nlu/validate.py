"""Check the training data and reply texts; every problem names the file and line.

`make validate` runs Rasa's own data checks and these: YAML that does not parse, intents
DESIGN.md does not know (or that the data lacks), too few examples, an example under two
intents, near-duplicates across intents, held-out messages that are also trained on, and
intents without a German and an English reply. Errors fail (exit 1); warnings are listed.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Callable

import yaml

from bot.language import detect_language
from bot.responses import LANGUAGES
from nlu.examples import DataError, Example, read_examples
from nlu.intents import INTENTS, MIN_ENGLISH, minimum_examples

ROOT = Path(__file__).resolve().parent.parent
NEAR_DUPLICATE = 0.9  # difflib ratio from which two examples under different intents look the same
DESIGN_PLACES = (ROOT / "DESIGN.md", ROOT.parent / "shared" / "DESIGN.md")


@dataclass(frozen=True)
class Problem:
    """One finding: an error fails validation, a warning is listed."""

    level: str  # error | warning
    where: str  # file:line
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.level}: {self.text}"


def _squash(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def _at(example: Example) -> str:
    return f"{example.path}:{example.line}"


def read_files(paths: list[Path]) -> tuple[list[Example], list[Problem]]:
    """Read each file on its own, so one broken file does not hide the problems of the others."""
    examples: list[Example] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            examples += read_examples(path)
        except DataError as err:
            problems.append(Problem("error", err.where, err.problem))
    return examples, problems


def check_examples(examples: list[Example]) -> list[Problem]:
    """Unknown intents, too few examples, too few English ones, one example under two intents."""
    problems: list[Problem] = []
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    for intent, items in by_intent.items():
        if intent not in INTENTS:
            problems.append(Problem("error", _at(items[0]), f"intent {intent!r} is not one of DESIGN.md's intents"))
    for intent in INTENTS:
        items = by_intent.get(intent, [])
        where = _at(items[0]) if items else "data/nlu"
        if len(items) < minimum_examples(intent):
            problems.append(Problem("error", where, f"intent {intent!r} has {len(items)} examples, needs at least {minimum_examples(intent)}"))
        english = sum(detect_language(e.text) == "en" for e in items)
        if items and english < MIN_ENGLISH:
            problems.append(Problem("warning", where, f"intent {intent!r} has {english} English examples, wants at least {MIN_ENGLISH}"))
    seen: dict[str, Example] = {}
    for example in examples:
        key = _squash(example.text)
        if not key and not example.text.strip():
            problems.append(Problem("error", _at(example), "empty example"))
            continue
        key = key or example.text.strip()
        first = seen.get(key)
        if first is None:
            seen[key] = example
        elif first.intent != example.intent:
            problems.append(Problem("error", _at(example), f"{example.text!r} is under {example.intent!r} and under {first.intent!r} at {_at(first)}"))
        else:
            problems.append(Problem("warning", _at(example), f"{example.text!r} repeats {_at(first)}"))
    return problems


def near_duplicates(examples: list[Example], threshold: float = NEAR_DUPLICATE) -> list[Problem]:
    """Examples under different intents that differ only in a letter or two: the model cannot tell them apart."""
    import numpy as np

    items = sorted(((_squash(e.text), e) for e in examples if _squash(e.text)), key=lambda item: len(item[0]))
    alphabet = {c: i for i, c in enumerate(sorted({c for text, _ in items for c in text}))}
    counts = np.zeros((len(items), len(alphabet) or 1), dtype=np.int32)
    for row, (text, _) in enumerate(items):
        for c in text:
            counts[row, alphabet[c]] += 1
    lengths = np.array([len(text) for text, _ in items])
    shortest_partner = threshold / (2 - threshold)  # ratio >= threshold needs len(a)/len(b) >= this
    problems = []
    for i, (a, first) in enumerate(items):
        end = int(np.searchsorted(lengths, len(a) / shortest_partner, side="right"))
        if end <= i + 1:
            continue
        # difflib's quick_ratio for the whole window at once: an upper bound of the real ratio
        quick = 2 * np.minimum(counts[i], counts[i + 1:end]).sum(axis=1) / (len(a) + lengths[i + 1:end])
        for j in np.nonzero(quick >= threshold)[0] + i + 1:
            b, other = items[j]
            if other.intent == first.intent or a == b or SequenceMatcher(None, a, b, autojunk=False).ratio() < threshold:
                continue
            later, earlier = sorted((first, other), key=lambda e: (str(e.path), e.line), reverse=True)
            problems.append(Problem(
                "warning", _at(later),
                f"{later.text!r} ({later.intent}) is nearly the same as {earlier.text!r} ({earlier.intent}) at {_at(earlier)}",
            ))
    return problems


def check_held_out(held_out: list[Example], trained: list[Example]) -> list[Problem]:
    """A held-out message must not be trained on, or the evaluation flatters the model."""
    exact = {e.text.strip().lower(): e for e in trained}
    alike = {_squash(e.text): e for e in trained}
    problems = []
    for example in held_out:
        if example.intent not in INTENTS:
            problems.append(Problem("error", _at(example), f"intent {example.intent!r} is not one of DESIGN.md's intents"))
        twin = exact.get(example.text.strip().lower())
        if twin is not None:
            problems.append(Problem("error", _at(example), f"{example.text!r} is held out but also trained on at {_at(twin)}"))
        elif (twin := alike.get(_squash(example.text))) is not None:
            problems.append(Problem("warning", _at(example), f"{example.text!r} is held out but trained on as {twin.text!r} at {_at(twin)}"))
    return problems


def _key_lines(path: Path) -> tuple[dict[str, int], dict[str, dict[str, int]], int]:
    """Line numbers in responses.yml: of each intent key, of its language keys, and of `intents:`."""
    root = yaml.compose(path.read_text(encoding="utf-8"))
    intents_node = next(((k, v) for k, v in root.value if k.value == "intents"), None) if isinstance(root, yaml.MappingNode) else None
    if intents_node is None or not isinstance(intents_node[1], yaml.MappingNode):
        return {}, {}, 1
    lines, languages = {}, {}
    for key, value in intents_node[1].value:
        lines[key.value] = key.start_mark.line + 1
        if isinstance(value, yaml.MappingNode):
            languages[key.value] = {k.value: k.start_mark.line + 1 for k, _ in value.value}
    return lines, languages, intents_node[0].start_mark.line + 1


def check_responses(data_dir: Path) -> list[Problem]:
    """Every intent needs a German and an English reply; replies for unknown intents are listed."""
    path = data_dir / "responses.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        lines, language_lines, intents_line = _key_lines(path)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        return [Problem("error", f"{path}:{mark.line + 1}" if mark else str(path), f"YAML does not parse: {err.problem or err.context}")]
    except (OSError, yaml.YAMLError) as err:
        return [Problem("error", str(path), f"cannot read: {err}")]
    replies = data.get("intents") if isinstance(data, dict) else None
    if not isinstance(replies, dict):
        return [Problem("error", str(path), "no 'intents:' section")]
    problems = []
    for intent in INTENTS:
        texts = replies.get(intent) if isinstance(replies.get(intent), dict) else {}
        for language in LANGUAGES:
            if not str(texts.get(language) or "").strip():
                line = language_lines.get(intent, {}).get(language) or lines.get(intent) or intents_line
                problems.append(Problem("error", f"{path}:{line}", f"intent {intent!r} has no {language!r} reply"))
    for intent in replies:
        if intent not in INTENTS:
            problems.append(Problem("warning", f"{path}:{lines.get(intent, intents_line)}", f"reply for {intent!r}, which is not one of DESIGN.md's intents"))
    return problems


def check_safety_net(data_dir: Path) -> list[Problem]:
    """The safety net's rules load, fire on their own examples and stay quiet on their quiet messages."""
    from bot.safety_net import SafetyNet

    return _rule_file_problems(data_dir / "safety_net.yml", SafetyNet.load)


def check_comment_policy(data_dir: Path) -> list[Problem]:
    """data/comment_policy.yml: known rules, intents and keys, texts present, no personal details in public replies."""
    from bot.comment_policy import PolicyError, problems, read

    path = data_dir / "comment_policy.yml"
    try:
        doc = read(path)
    except PolicyError as err:
        return [Problem("error", str(path), str(err))]
    return [Problem(level, f"{path}: {where}" if where else str(path), text) for level, where, text in problems(doc, INTENTS)]


def check_languages(data_dir: Path, design: Path | None) -> list[Problem]:
    """Each data/languages/<code>.yml has every text, only DESIGN.md's numbers, and rules that fire on their examples."""
    from bot.languages import NUMBERS, load_language, numbers_in

    problems = []
    if design is not None:
        section = design.read_text(encoding="utf-8").partition("## Numbers the bot gives")[2].split("\n## ")[0]
        given = {n for n in numbers_in(section) if len(n) >= 3}
        if given and given != NUMBERS:
            problems.append(Problem("error", "bot/languages.py", f"NUMBERS {sorted(NUMBERS)} differ from DESIGN.md's {sorted(given)}"))
    for path in sorted((data_dir / "languages").glob("*.yml")):
        problems += _rule_file_problems(path, load_language)
    return problems


def _rule_file_problems(path: Path, load: Callable[[Path], object]) -> list[Problem]:
    """Load a file of safety-net rules; its errors as problems, each rule's at the line of its name."""
    from bot.safety_net import SafetyNetError

    try:
        loaded = load(path)
    except SafetyNetError as err:
        if not err.problems:
            return [Problem("error", str(path), str(err).removeprefix(f"{path}: "))]
        text = path.read_text(encoding="utf-8").splitlines()
        found = []
        for problem in err.problems:
            name = problem.removeprefix("rule ").split(":", 1)[0]
            line = next((n for n, row in enumerate(text, 1) if row.strip() == f"- name: {name}"), 0)
            found.append(Problem("error", f"{path}:{line}" if line else str(path), problem))
        return found
    net = getattr(loaded, "net", loaded)  # a language file's net, or the German one
    lines: dict[str, int] = {}
    for n, row in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        lines.setdefault(row.strip().partition(":")[0], n)
    return [
        Problem("warning", f"{path}:{lines.get(name, 0)}", f"word list {name!r} is named by no rule and no guard: wire it up or delete it")
        for name in net.unused_lists()
    ]


def design_intents(design: Path) -> dict[str, int]:
    """The intents of DESIGN.md's table, with the line each is on."""
    found, inside = {}, False
    for number, line in enumerate(design.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("## "):
            inside = line.startswith("## Intents")
        match = re.match(r"^\| `([a-z_]+)` \|", line) if inside else None
        if match:
            found[match.group(1)] = number
    return found


def check_design(design: Path | None) -> list[Problem]:
    """The intent list of the code (nlu/intents.py) and DESIGN.md's table must be the same."""
    if design is None or not design.is_file():
        return [Problem("warning", "DESIGN.md", "not found; intents checked against nlu/intents.py only")]
    documented = design_intents(design)
    problems = [
        Problem("error", f"{design}:{line}", f"intent {intent!r} is in DESIGN.md but not in nlu/intents.py (and so has no data)")
        for intent, line in documented.items() if intent not in INTENTS
    ]
    problems += [
        Problem("error", str(ROOT / "nlu" / "intents.py"), f"intent {intent!r} is not in DESIGN.md's intent table")
        for intent in INTENTS if intent not in documented
    ]
    return problems


def check_with_rasa(config: Path, paths: list[Path]) -> list[Problem]:
    """Rasa's own loading and validation of the NLU files and config (slow: imports Rasa)."""
    from nlu.model import _quiet_rasa

    _quiet_rasa()
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.training_data.structures import StoryGraph
    from rasa.shared.exceptions import RasaException
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.validator import Validator

    problems = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            importer = TrainingDataImporter.load_from_dict(config_path=str(config), training_data_paths=[str(p) for p in paths])
            validator = Validator(Domain.from_dict({"intents": list(INTENTS)}), importer.get_nlu_data(), StoryGraph([]), importer.get_config())
            ok = validator.verify_intents(False) & validator.verify_example_repetition_in_intents(False)
            validator.warn_if_config_mandatory_keys_are_not_set()
        except (RasaException, ValueError, OSError) as err:
            return [Problem("error", str(getattr(err, "filename", None) or config), f"rasa: {err}")]
    for warning in caught:
        if issubclass(warning.category, UserWarning) and "rasa" in str(warning.filename):
            problems.append(Problem("error" if not ok else "warning", "rasa", " ".join(str(warning.message).split())))
    if not ok and not problems:
        problems.append(Problem("error", "rasa", "rasa data validation failed"))
    return problems


def validate(
    data_dir: Path = ROOT / "data",
    held_out: Path | None = ROOT / "tests" / "test_nlu.yml",
    design: Path | None = next((p for p in DESIGN_PLACES if p.is_file()), None),
    config: Path | None = None,
) -> list[Problem]:
    """All checks over a data directory; with `config`, Rasa's own checks too."""
    paths = sorted((data_dir / "nlu").glob("*.yml"))
    examples, problems = read_files(paths)
    problems += check_examples(examples) + near_duplicates(examples) + check_responses(data_dir) + check_design(design)
    problems += check_safety_net(data_dir) + check_languages(data_dir, design) + check_comment_policy(data_dir)
    if held_out is not None and held_out.is_file():
        tests, unreadable = read_files([held_out])
        problems += unreadable + check_held_out(tests, examples)
    if config is not None and not any(p.level == "error" and "YAML" in p.text for p in problems):
        problems += check_with_rasa(config, paths)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Print the problems; exit 1 when there is an error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=ROOT / "data")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--held-out", type=Path, default=ROOT / "tests" / "test_nlu.yml")
    parser.add_argument("--no-rasa", action="store_true", help="skip Rasa's own checks (they take a few seconds)")
    args = parser.parse_args(argv)
    problems = validate(args.data, args.held_out, config=None if args.no_rasa else args.config)
    def order(p: Problem) -> tuple[bool, str, int]:
        file, _, line = p.where.rpartition(":")
        return (p.level != "error", file, int(line)) if line.isdigit() else (p.level != "error", p.where, 0)

    here = f"{Path.cwd()}/"
    for problem in sorted(problems, key=order):
        print(str(problem).replace(here, ""))  # data/nlu/x.yml:12 reads better than the full path
    errors = sum(p.level == "error" for p in problems)
    print(f"{errors} error(s), {len(problems) - errors} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
