"""`spellings:` in a language file: one Latin-letter entry also matches its other phone spellings (Finglish kh/x, q/gh).

Session 9: the Russian and Ukrainian translit twins (y/i, ya/ja/ia, yu/ju/iu, shch/sch) come from the map too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.languages import LanguageError, load_language, spelling_variants

ROOT = Path(__file__).resolve().parent.parent
FA = ROOT / "data" / "languages" / "fa.yml"


def fa_doc() -> dict:
    return yaml.safe_load(FA.read_text(encoding="utf-8"))


def write(tmp_path: Path, doc: dict, code: str) -> Path:
    path = tmp_path / f"{code}.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def tiny_net(tmp_path: Path, spellings: object) -> Path:
    """The Turkish file's texts with a one-rule net: a blade (خنجر "khanjar", چاقو "chaqu", تیغ "tigh") plus "help"."""
    doc = yaml.safe_load((ROOT / "data" / "languages" / "tr.yml").read_text(encoding="utf-8"))
    doc["spellings"] = spellings
    doc["safety_net"] = {
        "words": {"blade": ["khanjar", "chaqu", "tigh"], "help": ["komak"]},
        "rules": [{"name": "blade_help", "intent": "emergency", "all": ["blade", "help"],
                   "examples": ["komak khanjar", "komak xanjar", "chaghu komak"], "quiet": ["komak", "tiq komak"]}],
    }
    return write(tmp_path, doc, "tr")


def test_the_persian_file_writes_each_finglish_word_once_and_x_and_gh_spellings_still_fire() -> None:
    doc = fa_doc()
    assert doc["spellings"] == {"kh": "x", "q": "gh"}
    words = [w for items in doc["safety_net"]["words"].values() for w in items]
    assert "khodamo" in " ".join(words) and "xodamo" not in " ".join(words)  # the x twins are gone from the file
    net = load_language(FA).net
    for text in ("mixam xodamo bekosham", "qorse xab xordam hamasho", "shoharam chaghu dare mige mikoshamet"):
        assert net.check(text) is not None, text


def test_without_the_map_the_x_spelling_of_a_kh_entry_no_longer_fires(tmp_path: Path) -> None:
    doc = fa_doc()
    net = load_language(write(tmp_path, doc, "fa")).net
    assert net.check("xodamo mikosham emshab") and net.check("qorse xab xordam hamasho")
    doc.pop("spellings")  # examples written with x or gh then miss: load without the strict check
    net = load_language(write(tmp_path, doc, "fa"), strict=False).net
    assert net.check("xodamo mikosham emshab") is None and net.check("qorse xab xordam hamasho") is None


def test_the_map_adds_variants_one_way_and_only_to_latin_letters(tmp_path: Path) -> None:
    net = load_language(tiny_net(tmp_path, {"kh": "x", "q": "gh"})).net
    assert net.check("komak xanjar!!") is not None and net.check("chaghu komak") is not None
    assert net.check("tiq komak") is None  # "tigh" is غ: the map never makes "q" from "gh"
    assert spelling_variants("tigh", {"kh": "x", "q": "gh"}) == ["tigh"]
    assert spelling_variants("خنجر", {"kh": "x"}) == ["خنجر"]
    assert spelling_variants("khkh", {"kh": "x"}) == ["khkh"]  # laughter, no vowel: kept as written
    assert spelling_variants("khodamo halq", {"kh": "x", "q": "gh"}) == [
        "khodamo halq", "xodamo halq", "khodamo halgh", "xodamo halgh"]


@pytest.mark.parametrize("spellings, message", [
    ({"kh": "خ"}, "Latin letters"),
    ({"kh": ""}, "Latin letters"),
    ({"x": "x"}, "different"),
    (["kh", "x"], "must map"),
])
def test_a_broken_spellings_map_is_refused_and_make_validate_names_it(tmp_path: Path, spellings: object, message: str) -> None:
    from nlu.validate import check_languages

    with pytest.raises(LanguageError, match=message):
        load_language(tiny_net(tmp_path, spellings))
    (tmp_path / "languages").mkdir()
    tiny_net(tmp_path / "languages", spellings)
    problems = check_languages(tmp_path, None)
    assert len(problems) == 1 and "spellings" in problems[0].text


@pytest.mark.parametrize("code, spellings, messages", [
    ("ru", {"i": "y", "ya": "ja", "yu": "ju", "shch": "sch", "sch": "sh"},
     ["lyagu pod poezd segodnja", "policiya bystree", "ya na kryshe, ustala ot vsego"]),
    ("uk", {"i": "y", "ya": "ja", "yu": "ju", "shch": "sch"},
     ["dopomozhyt, vin mene vbyvaye", "khochu pomerty", "vypyla vsi tabletky"]),
])
def test_russian_and_ukrainian_translit_twins_come_from_the_map(tmp_path: Path, code: str, spellings: dict,
                                                               messages: list[str]) -> None:
    """Session 9: "y" for и/ы/й, "ja"/"ia" for я, "ju"/"iu" for ю, "sch" for щ are made by the map, not written twice."""
    path = ROOT / "data" / "languages" / f"{code}.yml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["spellings"] == spellings
    net = load_language(path).net
    for text in messages:
        assert net.check(text) is not None, text
    doc.pop("spellings")
    bare = load_language(write(tmp_path, doc, code), strict=False).net
    assert all(bare.check(text) is None for text in messages)  # the twins are gone from the file
    entries = {entry.source for entry in net.lexicon.entries}
    assert not {"self harm", "hotel", "bit", "sin"} & entries  # "kh" -> "h" or "y" -> "i" would have added these
