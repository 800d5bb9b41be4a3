"""Tiny training sets and quickly trained models for tests of the trainers' tools (never the full data)."""

from __future__ import annotations

from pathlib import Path

from nlu.crossval import config_with_epochs, write_nlu_file
from nlu.examples import Example, read_dir
from tests.conftest import DATA, ROOT

TINY_EPOCHS = 40


def tiny_examples(intents: tuple[str, ...], per_intent: int = 12) -> list[Example]:
    """The first examples of a few intents from the real data."""
    picked: list[Example] = []
    for intent in intents:
        picked += [e for e in read_dir(DATA / "nlu") if e.intent == intent][:per_intent]
    return picked


def tiny_data_dir(folder: Path, intents: tuple[str, ...], per_intent: int = 12) -> Path:
    """A data directory (texts, rules) whose nlu/ holds only a few intents."""
    import shutil

    shutil.copytree(DATA, folder, ignore=shutil.ignore_patterns("nlu"))
    (folder / "nlu").mkdir()
    write_nlu_file(tiny_examples(intents, per_intent), folder / "nlu" / "tiny.yml")
    return folder


def train_tiny(folder: Path, intents: tuple[str, ...], epochs: int = TINY_EPOCHS) -> Path:
    """Train a small model on a few intents (seconds, not minutes); return the model file."""
    from nlu.train import train

    data = tiny_data_dir(folder / "data", intents)
    config = config_with_epochs(ROOT / "config.yml", epochs, folder / "config.yml")
    model = folder / "nlu.tar.gz"
    train(config, data / "nlu", model)
    return model
