"""The three sets `make evaluate` measures: cross-validation, the held-out file, the real development set.

The real development set (`REAL_EVAL_PATH`, default ../shared/eval/real_dev.tsv) holds real
messages kept for measuring only: never train on it, never write rules or thresholds from it.
Its texts may appear in reports/ (not in git) but are never printed to the console.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from nlu.eval_languages import measure as measure_languages
from nlu.evaluate import Scores, score
from nlu.examples import DataError, Example, read_dir, read_examples

ROOT = Path(__file__).resolve().parent.parent
REAL_ENV = "REAL_EVAL_PATH"
DEFAULT_REAL = Path("..") / "shared" / "eval" / "real_dev.tsv"
# (key in scores.json, name in the report, name on the console)
SETS = (
    ("crossval", "Kreuzvalidierung", "cross-validation"),
    ("held_out", "Testsatz", "held-out"),
    ("real", "Echte Nachrichten", "real dev set"),
)


def real_eval_path(environ: dict[str, str] | None = None) -> Path:
    """Where the real development set is: REAL_EVAL_PATH, relative to the repository root, or the default."""
    raw = (os.environ if environ is None else environ).get(REAL_ENV, "").strip()
    path = Path(raw) if raw else DEFAULT_REAL
    return path if path.is_absolute() else (ROOT / path).resolve()


def read_tsv(path: Path) -> list[Example]:
    """Read `intent<TAB>text[<TAB>source<TAB>note]` lines; a header line starting with `intent` is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(str(path), f"cannot read: {err.__class__.__name__}") from None
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if number == 1 and cells[0].strip().lower() == "intent":
            continue
        if len(cells) < 2 or not cells[0].strip() or not cells[1].strip():
            raise DataError(f"{path}:{number}", "expected intent, a tab, then the message")  # never echo the text
        text = "\t".join(cells[1:-2]) if len(cells) > 4 else cells[1]  # a tab inside the message
        examples.append(Example(" ".join(text.split()), cells[0].strip(), path, number))
    return examples


@dataclass
class Measured:
    """The scores of each set (None: skipped) and, per skipped set, one line saying why."""

    sets: dict[str, Scores | None]
    skipped: dict[str, str] = field(default_factory=dict)
    fold_macro_f1: list[float] = field(default_factory=list)
    model_name: str = "-"
    training_examples: int = 0
    languages: list = field(default_factory=list)  # nlu.eval_languages.LanguageScores, one per other language
    identification: object | None = None  # nlu.eval_languages.IdScores


def measure(
    config: Path,
    data: Path,
    model_path: Path,
    test: Path,
    real: Path,
    folds: int,
    epochs: int | None = None,
    settings: object | None = None,
    progress: object | None = None,
) -> Measured:
    """Cross-validate `config` on `data`, then score the trained model on `test` and on the real set."""
    from bot.services import build_triage
    from bot.settings import Settings
    from nlu.crossval import cross_validate
    from nlu.model import ModelHolder, NluModel

    settings = settings or Settings.from_env()
    examples = read_dir(data)
    result = Measured({key: None for key, _, _ in SETS}, training_examples=len(examples))
    if folds:
        cv = cross_validate(config, examples, folds, epochs, settings, progress=progress)
        result.sets["crossval"], result.fold_macro_f1 = cv.scores, cv.fold_macro_f1
    else:
        result.skipped["crossval"] = "cross-validation skipped (--folds 0)"
    if not model_path.is_file():
        result.skipped["held_out"] = result.skipped["real"] = f"no model at {model_path}: run `make train`"
        return result
    model = NluModel.load(model_path)
    result.model_name = model.name
    triage = build_triage(settings, ModelHolder(model))  # type: ignore[arg-type]
    try:
        if test.is_file():
            result.sets["held_out"] = asyncio.run(score(triage, read_examples(test)))
        else:
            result.skipped["held_out"] = f"no held-out file at {test}"
        if real.is_file():
            result.sets["real"] = asyncio.run(score(triage, read_tsv(real)))
        else:
            result.skipped["real"] = f"real development set not found at {real} ({REAL_ENV}): skipped"
        result.languages, result.identification = asyncio.run(measure_languages(triage))
    finally:
        model.close()
    return result


def console_lines(measured: Measured) -> list[str]:
    """One line per set: figures only, never a message text."""
    lines = []
    for key, _, name in SETS:
        scores = measured.sets[key]
        lines.append(f"{name:17} {scores.summary()}" if scores is not None else f"{name:17} {measured.skipped.get(key, 'skipped')}")
    return lines + language_lines(measured)


def language_lines(measured: Measured) -> list[str]:
    """One line per other language (tests/multilingual) and one for language identification."""
    found = [s.line() for s in measured.languages]
    return found + ([measured.identification.line()] if measured.identification is not None else [])  # type: ignore[attr-defined]
