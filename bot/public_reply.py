"""One check for every public reply under a post: no personal and no case details (issue 14).

A public reply is read by everyone. The same scan checks the texts of data/comment_policy.yml
(`make validate`; strict: no placeholders, no links, no number but the emergency and help lines)
and the public replies officers type in the inbox (bot/web/comment_actions.py): phone numbers,
e-mail addresses, @mentions of others, street addresses with a house number, file and case
numbers, the citizen's name or pseudonym. Standard library only (shared by the service and the NLU side).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

# DESIGN.md: 110 police, 112 fire and ambulance, 116 117 doctor on call, 116 016 Hilfetelefon,
# 0800 111 0 111 and 0800 111 0 222 TelefonSeelsorge, 116 111 Nummer gegen Kummer.
HELP_NUMBERS = frozenset({"110", "112", "116117", "116016", "116111", "08001110111", "08001110222"})
LABELS = {
    "case_number": "ein Aktenzeichen oder eine Vorgangsnummer", "email": "eine E-Mail-Adresse",
    "phone": "eine Telefonnummer", "address": "eine Adresse mit Hausnummer", "mention": "eine @-Erwähnung",
    "name": "den Namen der Person", "number": "eine Zahl", "placeholder": "einen Platzhalter", "link": "einen Link",
}
_FILE = r"\d{1,4}\s?(?:Js|UJs|Ds|Cs|Ls|Gs|Ks|Ns|AR|VRs|OWi)\s?\d{1,7}/\d{2,4}\b"  # prosecutors' and courts' file numbers
_CASE = re.compile(
    r"(?i)\b(?:aktenzeichen|az|gz|geschäftszeichen|vorgangs-?(?:nummer|nr)|vorgang|vg-?nr|tagebuch-?(?:nummer|nr)"
    r"|tgb-?nr|anzeigen?-?(?:nummer|nr)|fall-?(?:nummer|nr)|bearbeitungs-?(?:nummer|nr)|ticket-?(?:nummer|nr)?)"
    rf"\.?\s*(?:nr\.?\s*)?[:#]?\s*(?:(?:ist|lautet)\s+)?(?:{_FILE}|[a-z]{{0,5}}[-/]?\d[\w/.-]*)"
    rf"|\b{_FILE}|\b[A-Z]{{1,4}}[-/]?\d{{4,}}[-/]\d{{2,4}}\b|\b\d{{3,}}/\d{{2,4}}\b")  # ST/1234567/2024, 4711/24
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\d[\d \t/()-]{2,}\d(?!\w)")
_YEARS = re.compile(r"^(?:19|20)\d\d\s*[-/]\s*(?:19|20)\d\d$")
_STREET = re.compile(r"\b\w*(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|ufer|chaussee|steig|pfad|markt)"
                     r"\s*\d+\s?[a-z]?\b", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w.])@([\w.]+)")
_DIGITS = re.compile(r"\d[\d /().-]*\d|\d")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_URL = re.compile(r"https?://\S*|www\.\S*", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """Something in a public text that could be personal or case details."""

    kind: str  # case_number | email | phone | address | mention | name | number | placeholder | link
    text: str  # what was found

    def __str__(self) -> str:
        return f"{self.kind} {self.text}"

    @property
    def german(self) -> str:
        """For officers: "eine Telefonnummer (0711 123456)"."""
        return f"{LABELS[self.kind]} ({self.text})"


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _take(pattern: re.Pattern[str], text: str, kind: str, found: list[Finding]) -> str:
    """Note every match as a finding; the text with the matches blanked (so they are not found twice)."""
    for m in pattern.finditer(text):
        found.append(Finding(kind, m.group(0).strip()))
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def _national(number: str) -> str:
    """The digits of a phone number, +49/0049 written as the leading 0 (so both spellings compare equal)."""
    raw, digits = number.strip(), _digits(number)
    if raw.startswith("+49"):
        return "0" + digits[2:]
    if digits.startswith("0049"):
        return "0" + digits[4:]
    return digits


def own_numbers(*texts: str) -> frozenset[str]:
    """The department's public phone numbers found in these texts (department.yml `non_emergency_phone`)."""
    return frozenset(_national(m.group(0)) for t in texts if t for m in _PHONE.finditer(t) if len(_digits(m.group(0))) >= 5)


def _is_phone(number: str, allowed: frozenset[str] = frozenset()) -> bool:
    digits = _digits(number)
    if digits in HELP_NUMBERS or _YEARS.match(number.strip()) or _national(number) in allowed:
        return False
    return len(digits) >= 6 or (len(digits) >= 5 and number.lstrip()[0] in "0+")


def _names(text: str, names: Iterable[str]) -> list[Finding]:
    """The citizen's name or pseudonym: the whole (any case) or a part of four letters or more (as written)."""
    found = []
    for name in {n.strip() for n in names if n and len(n.strip()) >= 3}:
        whole = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE)
        parts = [p for p in name.split() if len(p) >= 4] if " " in name else []
        hit = whole or next((m for p in parts if (m := re.search(rf"(?<!\w){re.escape(p)}(?!\w)", text))), None)
        if hit:
            found.append(Finding("name", hit.group(0)))
    return found


def scan(text: str, names: Iterable[str] = (), mention_ok: Iterable[str] = (), strict: bool = False,
         numbers_ok: Iterable[str] = ()) -> list[Finding]:
    """What in a public text could be personal or case details (empty: nothing found).

    `names`: the citizen's public name and pseudonym; `mention_ok`: the usernames that may be @mentioned
    (the commenter's own); `strict` (texts written in advance, the policy file): no placeholders, links
    or numbers at all but the emergency and help lines. `numbers_ok`: the department's own public numbers
    (`own_numbers`), allowed in the replies officers type.
    """
    found: list[Finding] = []
    rest = text
    if strict:
        rest = _take(_PLACEHOLDER, rest, "placeholder", found)
        rest = _take(_URL, rest, "link", found)
    rest = _take(_CASE, rest, "case_number", found)
    rest = _take(_EMAIL, rest, "email", found)
    rest = _take(_STREET, rest, "address", found)
    allowed = {m.lower().lstrip("@") for m in mention_ok if m}
    for m in _MENTION.finditer(rest):
        if m.group(1).rstrip(".").lower() not in allowed:
            found.append(Finding("mention", m.group(0).rstrip(".")))
    rest = _MENTION.sub(lambda m: " " * len(m.group(0)), rest)
    found += _names(rest, names)
    if strict:
        found += [Finding("number", n.strip()) for n in _DIGITS.findall(rest) if _digits(n) not in HELP_NUMBERS]
    else:
        allowed = frozenset(numbers_ok)
        found += [Finding("phone", m.group(0).strip()) for m in _PHONE.finditer(rest) if _is_phone(m.group(0), allowed)]
    return found


def refusal(findings: list[Finding]) -> str:
    """The German message for an officer whose public reply was refused ("" when nothing was found)."""
    if not findings:
        return ""
    what = [f.german for f in findings[:4]]
    listed = what[0] if len(what) == 1 else ", ".join(what[:-1]) + " und " + what[-1]
    return (f"Nicht gesendet: Die öffentliche Antwort enthält {listed}. Öffentlich lesen das alle. "
            "Persönliche Angaben und Angaben zum Fall gehören in die private Antwort.")
