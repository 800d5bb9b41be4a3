"""`make validate`: each error planted in a copy of the data is found, with the file and the line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nlu.validate import Problem, check_with_rasa, main, validate
from tests.conftest import DATA, ROOT

DESIGN_ROWS = "## Intents (names are fixed)\n| intent | examples |\n|---|---|\n"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A copy of data/ to break."""
    return Path(shutil.copytree(DATA, tmp_path / "data"))


def append(path: Path, text: str) -> int:
    """Append lines to a file; return the line number of the first appended line."""
    before = path.read_text(encoding="utf-8")
    path.write_text(before.rstrip("\n") + "\n" + text, encoding="utf-8")
    return before.rstrip("\n").count("\n") + 2


def run(data: Path, **kwargs: object) -> list[Problem]:
    return validate(data, held_out=kwargs.pop("held_out", None), design=kwargs.pop("design", None), **kwargs)  # type: ignore[arg-type]


def found(problems: list[Problem], level: str, where: str, text: str) -> bool:
    return any(p.level == level and p.where == where and text in p.text for p in problems)


def test_a_copy_of_the_real_data_has_no_errors(data: Path) -> None:
    assert [str(p) for p in run(data) if p.level == "error"] == []


def test_yaml_that_does_not_parse_names_the_line(data: Path) -> None:
    path = data / "nlu" / "crime.yml"
    line = append(path, "- intent: report_crime\n  examples: [unclosed\n")
    problems = run(data)
    assert found(problems, "error", f"{path}:{line + 1}", "YAML does not parse") or found(
        problems, "error", f"{path}:{line + 2}", "YAML does not parse"
    ), problems
    # the other files are still checked: their examples count, so no intent looks empty
    assert not any("has 0 examples" in p.text and "greet" in p.text for p in problems)


def test_an_example_under_two_intents(data: Path) -> None:
    path = data / "nlu" / "crime.yml"
    line = append(path, "- intent: bike_theft\n  examples: |\n    - Hallo!\n")
    problems = run(data)
    assert found(problems, "error", f"{path}:{line + 2}", "under 'bike_theft' and under 'greet'"), problems


def test_a_near_duplicate_under_another_intent_is_a_warning(data: Path) -> None:
    path = data / "nlu" / "crime.yml"
    line = append(path, "- intent: bike_theft\n  examples: |\n    - die frau nebenan schreit seit minuten um hilf\n")
    near = [str(p) for p in run(data) if p.level == "warning" and "nearly the same" in p.text]
    assert any(f"{path}:{line + 2}" in p and "'die frau nebenan schreit seit minuten um hilfe' (emergency)" in p for p in near), near


def test_a_word_list_no_rule_names_is_a_warning_at_its_line(data: Path) -> None:
    """A trainer who adds a list and forgets the rule learns it from `make validate`; the shipped data has none."""
    assert [str(p) for p in run(data) if "named by no rule" in p.text] == []
    path = data / "languages" / "pl.yml"
    rows = path.read_text(encoding="utf-8").splitlines()
    at = rows.index("  words:") + 1
    path.write_text("\n".join([*rows[:at], "    s19_forgotten: [nigdzie, donikad]", *rows[at:]]) + "\n", encoding="utf-8")
    problems = run(data)
    assert found(problems, "warning", f"{path}:{at + 1}", "word list 's19_forgotten' is named by no rule and no guard"), problems
    assert [str(p) for p in problems if p.level == "error"] == []


def test_an_intent_design_md_does_not_know(data: Path) -> None:
    path = data / "nlu" / "services.yml"
    line = append(path, "- intent: weather\n  examples: |\n    - regnet es morgen\n")
    assert found(run(data), "error", f"{path}:{line + 2}", "'weather' is not one of DESIGN.md's intents")


def test_an_intent_with_too_few_examples(data: Path) -> None:
    path = data / "nlu" / "conversation.yml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("- intent: goodbye\n")
    end = lines.index("- intent: thanks\n")
    del lines[start + 2 + 5:end]  # keep five goodbye examples
    path.write_text("".join(lines), encoding="utf-8")
    problems = run(data)
    assert found(problems, "error", f"{path}:{start + 3}", "intent 'goodbye' has 5 examples, needs at least 40"), problems


def test_an_intent_without_an_english_reply(data: Path) -> None:
    path = data / "responses.yml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("  greet:\n")
    english = next(i for i in range(start, len(lines)) if lines[i] == "    en: |\n")
    end = next(i for i in range(english + 1, len(lines)) if not lines[i].startswith("      "))
    lines[english:end] = ["    en: \"\"\n"]
    path.write_text("".join(lines), encoding="utf-8")
    assert found(run(data), "error", f"{path}:{english + 1}", "intent 'greet' has no 'en' reply")


def test_design_md_and_the_code_must_name_the_same_intents(data: Path, tmp_path: Path) -> None:
    from nlu.intents import INTENTS

    design = tmp_path / "DESIGN.md"
    rows = "".join(f"| `{i}` | x |\n" for i in INTENTS if i != "traffic")
    design.write_text("# design\n\n" + DESIGN_ROWS + rows + "| `weather` | rain |\n\n## Numbers\n", encoding="utf-8")
    problems = run(data, design=design)
    assert found(problems, "error", f"{design}:{len(INTENTS) + 5}", "'weather' is in DESIGN.md but not in nlu/intents.py")
    assert any(p.level == "error" and "'traffic' is not in DESIGN.md" in p.text for p in problems)


def test_a_held_out_message_that_is_also_trained_on(data: Path, tmp_path: Path) -> None:
    held_out = tmp_path / "test_nlu.yml"
    held_out.write_text('version: "3.1"\nnlu:\n- intent: emergency\n  examples: |\n    - neu hier\n    - Messer!!\n', encoding="utf-8")
    problems = run(data, held_out=held_out)
    assert found(problems, "error", f"{held_out}:6", "'Messer!!' is held out but also trained on at")


def test_the_command_exits_non_zero_on_errors_and_lists_them(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(data), "--no-rasa"]) == 0
    path = data / "nlu" / "services.yml"
    line = append(path, "- intent: weather\n  examples: |\n    - regnet es morgen\n")
    assert main([str(data), "--no-rasa"]) == 1
    out = capsys.readouterr().out
    assert f"{path}:{line + 2}: error: intent 'weather'" in out and "1 error(s)" in out.splitlines()[-1]


def test_rasa_accepts_the_real_data_and_flags_an_unknown_intent(data: Path) -> None:
    paths = sorted((DATA / "nlu").glob("*.yml"))
    assert [p for p in check_with_rasa(ROOT / "config.yml", paths) if p.level == "error"] == []
    path = data / "nlu" / "services.yml"
    append(path, "- intent: weather\n  examples: |\n    - regnet es morgen\n")
    problems = check_with_rasa(ROOT / "config.yml", sorted((data / "nlu").glob("*.yml")))
    assert any(p.level == "error" and "weather" in p.text for p in problems), problems
