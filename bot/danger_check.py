"""The check question "Bist du oder ist jemand gerade in Gefahr?": what it asked about, and typed answers to it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.safety_net import ESCALATION_INTENTS
from bot.text import normalise

CHECK_NO = "not_in_danger"  # the value of the check's "no" button: not an intent, but channels carry it like one
FALLBACK = "nlu_fallback"

_YES_WORD = r"(?:ja+|jap|jep|jo|joa|jawohl|yes|yeah|yep|yup|yea|hilfe|help|sos|doch)"
_YES_MORE = (
    r"jetzt|gerade|grad|grade|bitte|schnell|sofort|dringend|ich|now|right now|please|quick|urgent|i",
    r"(?:ich bin|wir sind|er ist|sie ist|jemand ist|es ist|bin|ist) (?:gerade |jetzt )?in gefahr|(?:gerade |jetzt )?in gefahr",
    r"(?:i'?m|i am|we'?re|we are|he'?s|she'?s|someone'?s|someone is|somebody is) (?:in danger|not safe)|in danger",
    r"(?:ich )?glaub(?:e)? (?:schon|ja)|i think so",
)
_NO_WORD = r"(?:nein|ne|nee|noe|nope|nah|no|nop)"
_SAFE = (  # a "no" in other words: each of these alone answers the question
    r"alles (?:gut|ok|okay|klar|in ordnung|fine)|(?:mir|uns) geht(?:'?s| es) gut|(?:ich bin|wir sind|bin) (?:sicher|in sicherheit)",
    r"(?:(?:ich bin|wir sind|bin|es ist|hier ist) )?(?:nicht|keine?) (?:in )?gefahr|(?:niemand|keiner) (?:ist )?in gefahr",
    r"(?:i'?m|i am|we'?re|we are) (?:fine|ok|okay|safe)|all (?:good|fine)|everything(?:'?s| is) (?:fine|ok|okay)",
    r"(?:(?:i'?m|i am|we'?re|we are|nobody'?s|nobody is) )?not in danger|(?:nobody|no one|noone) (?:is )?in danger|no danger",
)
_POLITE = r"danke|thanks|thank you|ok|okay|passt"
_UNSURE = (
    r"(?:ich )?weiss? (?:es )?nicht|keine ahnung|k ?a|kp|vielleicht|evtl|eventuell|kann sein|weiss nicht genau",
    r"(?:ich )?bin (?:mir )?(?:nicht |un)sicher|nicht sicher|unsicher",
    r"maybe|perhaps|not sure|i'?m not sure|i don'?t know|i dont know|dont know|don'?t know|idk",
)


def _one_of(*patterns: str) -> str:
    return "(?:" + "|".join(patterns) + ")"


_YES = re.compile(rf"^(?:{_YES_WORD}|{_one_of(*_YES_MORE[1:])})(?: (?:{_YES_WORD}|{_one_of(*_YES_MORE)}))*$")
_NO = re.compile(rf"^(?:{_NO_WORD}|{_one_of(*_SAFE)})(?: (?:{_NO_WORD}|{_one_of(*_SAFE)}|{_POLITE}))*$")
_UNSURE_RE = re.compile(rf"^(?:{_NO_WORD} |ja |hm+ |also )?{_one_of(*_UNSURE)}(?: {_one_of(*_UNSURE)})*$")
# Someone says they or another person are in danger ("ich bin in gefahr", "my sister is in danger"), not negated.
_DANGER_SAID = re.compile(
    r"(?<!niemand )(?<!keiner )(?<!nobody )(?<!no one )"
    r"\b(?:(?:bin|bist|ist|sind|seid)(?: gerade| jetzt| grad| grade)? in gefahr|(?:i'?m|am|are|is|we'?re|he'?s|she'?s)(?: now)? (?:in danger|not safe))\b"
)
_PUNCTUATION = re.compile(r"[^a-z' ]+")


def answer_to_check(text: str) -> str | None:
    """"yes", "no" or "unsure" for a short typed answer to the check question; None for anything else.

    Only whole answers count ("ja", "ja jetzt", "nein danke", "alles gut", "not in danger",
    "weiß nicht"), and any message that says someone is in danger counts as yes; other
    messages are read by the safety net and the model as usual.
    """
    words = " ".join(_PUNCTUATION.sub(" ", normalise(text)).split())
    if not words:
        return None
    if _DANGER_SAID.search(words):
        return "yes"
    if _UNSURE_RE.match(words):
        return "unsure"
    if _YES.match(words):
        return "yes"
    if _NO.match(words):
        return "no"
    return None


@dataclass(frozen=True)
class Checked:
    """What a `check` asked about: the danger the model saw, and its best reading besides danger."""

    danger: str = "emergency"  # emergency | self_harm: what a "yes" escalates as
    intent: str = FALLBACK  # the model's best intent other than emergency and self_harm
    confidence: float = 0.0

    def as_meta(self) -> dict[str, Any]:
        """The form kept in the conversation's meta until the citizen answers."""
        return {"danger": self.danger, "intent": self.intent, "confidence": round(self.confidence, 4)}

    @classmethod
    def from_meta(cls, value: Any) -> "Checked | None":
        """Read what as_meta wrote; None for anything else."""
        if not isinstance(value, dict):
            return None
        try:
            danger, intent, confidence = str(value["danger"]), str(value["intent"]), float(value["confidence"])
        except (KeyError, TypeError, ValueError):
            return None
        return cls(danger if danger in ESCALATION_INTENTS else "emergency", intent, confidence)
