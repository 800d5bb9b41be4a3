"""Issue #13: each rule round's batch (written before its rules) stays at full recall and without false alarms.

Round 11 (session 10): fa and tr (its ar and uk rules were taken back after a review found everyday messages
they escalated). Round 12 for ar and uk (session 11) was taken back too; its batches and the review that found
the everyday messages it escalated are kept in bench/languages_open/ for the next try.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.languages import load_language

ROOT = Path(__file__).resolve().parent.parent
# (language, round, acute messages, everyday messages)
BATCHES = [("fa", 11, 20, 12), ("tr", 11, 20, 12)]


@pytest.mark.parametrize(("code", "round_", "acute", "other"), BATCHES)
def test_every_acute_message_of_a_round_escalates_and_no_other_does(code: str, round_: int, acute: int, other: int) -> None:
    net = load_language(ROOT / "data" / "languages" / f"{code}.yml").net
    batch = yaml.safe_load((ROOT / "bench" / "multilingual_dev" / f"{code}_r{round_}.yml").read_text(encoding="utf-8"))
    assert (len(batch["escalate"]), len(batch["other"])) == (acute, other)
    assert [e["text"] for e in batch["escalate"] if net.check(e["text"]) is None] == []
    assert [e["text"] for e in batch["other"] if net.check(e["text"]) is not None] == []


# The blind batches of sessions 14 to 19 (bench/languages_open/; 40 acute, 30 everyday), and session 19's fresh
# check and end-of-session batches (20 acute, 30 everyday; measured once before their fixes, README), after their
# rounds: how many acute messages the language's own net escalates at least, and that no everyday one is escalated.
BLIND = [
    ("fa", "fa_blind_s14.yml", 40), ("fa", "fa_blind_s15.yml", 36), ("ar", "ar_blind_s15.yml", 35),
    ("tr", "tr_blind_s16.yml", 38), ("fa", "fa_blind_s16.yml", 39),
    ("fa", "fa_blind_s17.yml", 38),
    ("ru", "ru_blind_s18.yml", 40), ("uk", "uk_blind_s18.yml", 39), ("pl", "pl_blind_s18.yml", 40),
    ("ro", "ro_blind_s18.yml", 40), ("tr", "tr_blind_s19.yml", 39), ("fa", "fa_blind_s19.yml", 40),
    ("ar", "ar_blind_s19.yml", 40),
    ("tr", "tr_check_s19.yml", 20), ("ar", "ar_check_s19.yml", 20), ("fa", "fa_check_s19.yml", 19),
    ("tr", "tr_final_s19.yml", 19), ("ar", "ar_final_s19.yml", 20), ("fa", "fa_final_s19.yml", 20),
    ("ru", "ru_final_s19.yml", 19), ("uk", "uk_final_s19.yml", 20), ("pl", "pl_final_s19.yml", 20),
    ("ro", "ro_final_s19.yml", 20),
]


@pytest.mark.parametrize(("code", "name", "caught"), BLIND)
def test_a_blind_batch_keeps_its_figures_after_its_round(code: str, name: str, caught: int) -> None:
    net = load_language(ROOT / "data" / "languages" / f"{code}.yml").net
    batch = yaml.safe_load((ROOT / "bench" / "languages_open" / name).read_text(encoding="utf-8"))
    assert len(batch["escalate"]) in (20, 40) and len(batch["other"]) == 30
    missed = [e["text"] for e in batch["escalate"] if net.check(e["text"]) is None]
    assert len(batch["escalate"]) - len(missed) >= caught, missed
    assert [e["text"] for e in batch["other"] if net.check(e["text"]) is not None] == []
