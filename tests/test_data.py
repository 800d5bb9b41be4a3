"""The trainers' data: every DESIGN.md intent, enough examples, replies in both languages, no clashes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.responses import Responses
from nlu.examples import read_dir, read_examples
from nlu.intents import INTENTS, minimum_examples
from nlu.validate import Problem, check_examples, validate
from tests.conftest import DATA, ROOT

DESIGN = ROOT.parent / "shared" / "DESIGN.md"


def test_the_data_validates_without_errors() -> None:
    errors = [str(p) for p in validate(DATA) if p.level == "error"]
    assert errors == []


@pytest.mark.skipif(not DESIGN.is_file(), reason="../shared/DESIGN.md is not beside the repository")
def test_intent_list_matches_design_md() -> None:
    table = DESIGN.read_text(encoding="utf-8").split("## Intents", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)) == set(INTENTS)


@pytest.mark.parametrize("intent", INTENTS)
def test_each_intent_has_enough_examples_and_both_replies(intent: str, responses: Responses) -> None:
    examples = [e for e in read_dir(DATA / "nlu") if e.intent == intent]
    assert len(examples) >= minimum_examples(intent)
    assert responses.intent(intent, "de") and responses.intent(intent, "en")


def test_held_out_set_covers_every_intent_and_is_never_trained_on() -> None:
    held_out = read_examples(ROOT / "tests" / "test_nlu.yml")
    counts = {i: sum(e.intent == i for e in held_out) for i in INTENTS}
    assert min(counts.values()) >= 10, counts
    trained = {e.text.lower() for e in read_dir(DATA / "nlu")}
    assert [e.text for e in held_out if e.text.lower() in trained] == []


def test_numbers_of_design_md_are_where_they_belong(responses: Responses) -> None:
    assert "110" in responses.system_text("emergency_prompt", "de") and "112" in responses.system_text("emergency_prompt", "de")
    assert "116 016" in responses.intent("domestic_violence", "de")
    assert "0800 111 0 111" in responses.intent("self_harm", "de")
    assert "Onlinewache" in responses.intent("report_crime", "de")


def _write(tmp_path: Path, body: str) -> list[Problem]:
    nlu = tmp_path / "nlu"
    nlu.mkdir()
    (nlu / "x.yml").write_text('version: "3.1"\nnlu:\n' + body, encoding="utf-8")
    return check_examples(read_dir(nlu))


def test_an_example_under_two_intents_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    problems = _write(tmp_path, "- intent: greet\n  examples: |\n    - hallo\n- intent: thanks\n  examples: |\n    - Hallo!\n")
    clash = [p for p in problems if "under 'thanks' and under 'greet'" in p.text]
    assert clash and clash[0].level == "error" and clash[0].where.endswith("x.yml:8")


def test_an_unknown_intent_is_an_error(tmp_path: Path) -> None:
    problems = _write(tmp_path, "- intent: weather\n  examples: |\n    - regnet es\n")
    assert any(p.level == "error" and "'weather' is not one of" in p.text for p in problems)
