"""Session 11 (issue #13): the round-12 batches stay at full recall and without false alarms."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.languages import load_language

ROOT = Path(__file__).resolve().parent.parent
CODES = ["ar", "uk"]


def _batch(code: str) -> dict:
    return yaml.safe_load((ROOT / "bench" / "multilingual_dev" / f"{code}_r12.yml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("code", CODES)
def test_every_acute_message_of_the_round_12_batch_escalates(code: str) -> None:
    net = load_language(ROOT / "data" / "languages" / f"{code}.yml").net
    batch = _batch(code)
    missed = [e["text"] for e in batch["escalate"] if net.check(e["text"]) is None]
    assert len(batch["escalate"]) == 24
    assert missed == []


@pytest.mark.parametrize("code", CODES)
def test_no_other_message_of_the_round_12_batch_escalates(code: str) -> None:
    net = load_language(ROOT / "data" / "languages" / f"{code}.yml").net
    batch = _batch(code)
    alarms = [e["text"] for e in batch["other"] if net.check(e["text"]) is not None]
    assert len(batch["other"]) == 16
    assert alarms == []
