"""Stratified k-fold cross-validation of one or more Rasa pipelines on the training data.

`make crossval` compares config.yml with Rasa's default pipeline (nlu/default_config.yml)
and prints the macro-F1 per config. Every fold trains a model into a temporary folder
(about 90 s each on two cores), so five folds of one config take several minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

from nlu.evaluate import Scores, merge, score
from nlu.examples import Example, read_dir

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "nlu" / "default_config.yml"


@dataclass
class CrossValidation:
    """The scores of one config over all folds (each message scored by the model that did not see it)."""

    config: str
    folds: int
    scores: Scores
    fold_macro_f1: list[float]
    train_seconds: float

    @property
    def macro_f1_sd(self) -> float:
        """How much the macro-F1 varies between folds."""
        return statistics.stdev(self.fold_macro_f1) if len(self.fold_macro_f1) > 1 else 0.0


def stratified_folds(examples: list[Example], folds: int, seed: int = 42) -> list[tuple[list[Example], list[Example]]]:
    """Split into `folds` (train, test) pairs; every intent is spread evenly over the test parts."""
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    parts: list[list[Example]] = [[] for _ in range(folds)]
    rng = random.Random(seed)
    offset = 0
    for intent in sorted(by_intent):
        items = list(by_intent[intent])
        rng.shuffle(items)
        for i, example in enumerate(items):
            parts[(offset + i) % folds].append(example)
        offset += len(items)
    return [([e for j, p in enumerate(parts) if j != i for e in p], parts[i]) for i in range(folds)]


def write_nlu_file(examples: Iterable[Example], path: Path) -> Path:
    """Write examples as one Rasa NLU YAML file, grouped by intent."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example.text)
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in by_intent.items():
        lines += [f"- intent: {intent}", "  examples: |"] + [f"    - {' '.join(t.split())}" for t in texts]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config_with_epochs(config: Path, epochs: int | None, out: Path) -> Path:
    """A copy of `config` whose trained components run `epochs` epochs (None: unchanged)."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    if epochs is not None:
        for component in data.get("pipeline") or []:
            if "epochs" in component or component.get("name") in ("DIETClassifier", "ResponseSelector"):
                component["epochs"] = epochs
    out.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


def _train(config: Path, train_examples: list[Example], folder: Path) -> Path:
    from nlu.train import train

    data = folder / "data"
    data.mkdir()
    write_nlu_file(train_examples, data / "train.yml")
    model = folder / "model.tar.gz"
    with contextlib.redirect_stdout(io.StringIO()):  # Rasa prints "Your Rasa model is trained" per fold
        train(config, data, model)
    return model


def _score_fold(model_path: Path, test: list[Example], settings: object) -> Scores:
    from bot.services import build_triage
    from nlu.model import ModelHolder, NluModel

    model = NluModel.load(model_path)
    try:
        return asyncio.run(score(build_triage(settings, ModelHolder(model)), test))  # type: ignore[arg-type]
    finally:
        model.close()
        del model
        gc.collect()


def cross_validate(
    config: Path,
    examples: list[Example],
    folds: int = 5,
    epochs: int | None = None,
    settings: object | None = None,
    progress: object | None = None,
) -> CrossValidation:
    """Train one model per fold on the other folds and score it on its own fold."""
    from bot.settings import Settings

    os.environ.setdefault("RASA_MAX_CACHE_SIZE", "0")  # fold models are thrown away: do not fill .rasa/cache
    settings = settings or Settings.from_env()
    parts, fold_f1 = [], []
    train_seconds = 0.0
    for number, (train_examples, test) in enumerate(stratified_folds(examples, folds), 1):
        if progress is not None:
            progress.set_description(f"{config.name} fold {number}/{folds}")  # type: ignore[attr-defined]
        with tempfile.TemporaryDirectory(prefix="streife-cv-") as tmp:
            folder = Path(tmp)
            fold_config = config_with_epochs(config, epochs, folder / "config.yml")
            started = time.perf_counter()
            model_path = _train(fold_config, train_examples, folder)
            train_seconds += time.perf_counter() - started
            fold_scores = _score_fold(model_path, test, settings)
        parts.append(fold_scores)
        fold_f1.append(fold_scores.macro_f1)
        if progress is not None:
            progress.update(1)  # type: ignore[attr-defined]
    from bot.services import build_triage

    return CrossValidation(str(config), folds, merge(build_triage(settings), parts), fold_f1, train_seconds / folds)  # type: ignore[arg-type]


def progress_bar(total: int) -> object:
    """A progress bar on stderr (training is slow: people should see it moving)."""
    from tqdm import tqdm

    warnings.filterwarnings("ignore")
    os.environ["LOG_LEVEL"] = "ERROR"  # hides Rasa's own epoch bars, which would scramble ours
    return tqdm(total=total, file=sys.stderr, unit="fold", dynamic_ncols=True)


def table(results: list[CrossValidation]) -> str:
    """A Markdown table: one row per config."""
    rows = [
        "| config | macro-F1 (sd over folds) | accuracy | escalation recall | false alarms | train s/fold |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.scores
        rows.append(
            f"| {Path(r.config).name if Path(r.config).parent == ROOT else os.path.relpath(r.config, ROOT)} "
            f"| {s.macro_f1:.3f} (±{r.macro_f1_sd:.3f}) | {s.accuracy:.3f} | {s.escalation_recall:.3f} "
            f"| {s.false_alarm_rate:.2%} | {r.train_seconds:.0f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Cross-validate each config given (default: config.yml and Rasa's default) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", type=Path, default=[ROOT / "config.yml", DEFAULT_CONFIG])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs of every config (quick runs)")
    args = parser.parse_args(argv)
    examples = read_dir(args.data)
    bar = progress_bar(len(args.configs) * args.folds)
    results = []
    for config in args.configs:
        results.append(cross_validate(config.resolve(), examples, args.folds, args.epochs, progress=bar))
        bar.write(table(results[-1:]).splitlines()[-1])  # type: ignore[attr-defined]  # each row as soon as it is known
    bar.close()  # type: ignore[attr-defined]
    print(f"{args.folds}-fold cross-validation on {args.data} ({len(examples)} examples)\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
