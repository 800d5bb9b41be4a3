"""Check the training data and reply texts; every problem names the file and line."""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bot.language import detect_language
from bot.responses import LANGUAGES, Responses, ResponsesError
from nlu.examples import DataError, Example, read_dir
from nlu.intents import INTENTS, MIN_ENGLISH, minimum_examples

ROOT = Path(__file__).resolve().parent.parent


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


def check_examples(examples: list[Example]) -> list[Problem]:
    """Unknown intents, too few examples, too few English ones, one example under two intents."""
    problems: list[Problem] = []
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    for intent, items in by_intent.items():
        if intent not in INTENTS:
            problems.append(Problem("error", f"{items[0].path}:{items[0].line}", f"intent {intent!r} is not one of DESIGN.md's intents"))
    for intent in INTENTS:
        items = by_intent.get(intent, [])
        where = f"{items[0].path}:{items[0].line}" if items else "data/nlu"
        if len(items) < minimum_examples(intent):
            problems.append(Problem("error", where, f"intent {intent!r} has {len(items)} examples, needs at least {minimum_examples(intent)}"))
        english = sum(detect_language(e.text) == "en" for e in items)
        if items and english < MIN_ENGLISH:
            problems.append(Problem("warning", where, f"intent {intent!r} has {english} English examples, wants at least {MIN_ENGLISH}"))
    seen: dict[str, Example] = {}
    for example in examples:
        key = _squash(example.text)
        if not key and not example.text.strip():
            problems.append(Problem("error", f"{example.path}:{example.line}", "empty example"))
            continue
        key = key or example.text.strip()
        first = seen.get(key)
        if first is None:
            seen[key] = example
        elif first.intent != example.intent:
            problems.append(Problem("error", f"{example.path}:{example.line}", f"{example.text!r} is under {example.intent!r} and under {first.intent!r} at {first.path}:{first.line}"))
        else:
            problems.append(Problem("warning", f"{example.path}:{example.line}", f"{example.text!r} repeats {first.path}:{first.line}"))
    return problems


def check_responses(data_dir: Path) -> list[Problem]:
    """Every intent needs a German and an English reply."""
    try:
        responses = Responses.load(data_dir)
    except ResponsesError as err:
        return [Problem("error", str(data_dir / "responses.yml"), str(err))]
    problems = []
    for intent in INTENTS:
        texts = responses.intents.get(intent) or {}
        for language in LANGUAGES:
            if not str(texts.get(language) or "").strip():
                problems.append(Problem("error", str(data_dir / "responses.yml"), f"intent {intent!r} has no {language!r} reply"))
    return problems


def validate(data_dir: Path = ROOT / "data") -> list[Problem]:
    """All checks over a data directory."""
    try:
        examples = read_dir(data_dir / "nlu")
    except DataError as err:
        return [Problem("error", str(err).split(": ")[0], str(err))]
    return check_examples(examples) + check_responses(data_dir)


def main(argv: list[str] | None = None) -> int:
    """Print the problems; exit 1 when there is an error."""
    data_dir = Path(argv[0]) if argv else ROOT / "data"
    problems = validate(data_dir)
    for problem in sorted(problems, key=lambda p: (p.level != "error", p.where)):
        print(problem)
    errors = sum(p.level == "error" for p in problems)
    print(f"{errors} error(s), {len(problems) - errors} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
