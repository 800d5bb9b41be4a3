"""Guess whether a citizen writes German or English (the bot answers in one of the two)."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-zäöüß']+")
ENGLISH = frozenset(
    """
    the a an and or but is are was were be been am i i'm im you your you're my me we our us
    he she it they them his her their this that these those what why how when where who which
    hello hi hey thanks thank please help need want can could would should will do does did
    not don't dont can't cant have has had there here with without for from about of to in on
    at by someone somebody something my police officer stolen lost found report bike phone
    wallet call now right just yes no ok okay bye goodbye talk human person real bot are you
    """.split()
)
GERMAN = frozenset(
    """
    der die das ein eine einen einem einer und oder aber ist sind war waren bin bist sein
    ich du er sie es wir ihr mein meine mich mir dich dir uns euch was warum wie wann wo wer
    hallo moin servus hey danke bitte hilfe brauche will kann könnt koennt würde muss soll
    nicht kein keine nichts hab habe hat haben da hier mit ohne für von über zu im in am auf
    bei jemand etwas polizei anzeige fahrrad handy geklaut gestohlen verloren gefunden jetzt
    gerade ja nein okay tschüss tschau mensch echt bot seid ihr gibt es schon noch auch mal
    nen ne grad isch net nich nix wat
    """.split()
)


def detect_language(text: str, default: str = "de") -> str:
    """Return "en" when the text reads as English, else "de" (German first)."""
    words = _WORD.findall(text.lower())
    english = sum(w in ENGLISH for w in words)
    german = sum(w in GERMAN for w in words) + 2 * sum(ch in "äöüß" for ch in text.lower())
    if english > german:
        return "en"
    if german > english:
        return "de"
    return default
