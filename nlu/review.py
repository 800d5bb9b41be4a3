"""`make review`: messages worth a trainer's look, from the handover log into a Rasa YAML file.

Exported are citizens' messages the bot did not understand (clarify, nlu_fallback,
out_of_scope), answered with low confidence, or that an officer relabelled in the inbox.
Each becomes its own small block under the model's best guess (or the officer's label),
with a comment saying why it is there. Texts are pseudonymised: phone numbers, e-mail
addresses, links, handles, IBANs, number plates, street addresses and names after
"ich heiße" and the like become placeholders such as <telefon>. No user or chat ids.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

from nlu.examples import read_dir

ROOT = Path(__file__).resolve().parent.parent
LOW_CONFIDENCE = 0.7
NOT_UNDERSTOOD = ("nlu_fallback", "out_of_scope")

_WORD = r"[A-Za-zÄÖÜäöüß][\wÄÖÜäöüß-]*"
_NAME = r"[A-ZÄÖÜ][a-zäöüß]+(?:-[A-ZÄÖÜ][a-zäöüß]+)?"
PLACEHOLDERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b(?:https?://|www\.)\S+", re.I), "<link>"),
    (re.compile(r"(?<![\w@])@[A-Za-z0-9_.]{2,}"), "<nutzer>"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,3})?\b"), "<iban>"),
    (re.compile(r"(?<![\w+])(?:\+|00)\d{1,3}[\s/.-]?(?:\(0\)\s?)?\d{2,5}(?:[\s/.-]?\d{2,}){1,4}(?!\w)"), "<telefon>"),
    (re.compile(r"(?<![\w+])0\d{2,5}(?:[\s/-]?\d{2,}){1,4}(?!\w)"), "<telefon>"),
    (re.compile(r"\b[A-ZÄÖÜ]{1,3}[- ][A-Z]{1,2}[ -]?\d{1,4}[EH]?\b"), "<kennzeichen>"),
    (re.compile(rf"\b{_WORD}(?:straße|strasse|str\.)(?:\s*\d+(?:\s?[a-z]\b)?)?", re.I), "<straße>"),
    (re.compile(rf"\b{_WORD}(?:weg|gasse|platz|allee|ring|damm|ufer)\s*\d+(?:\s?[a-z]\b)?", re.I), "<straße>"),
    (re.compile(r"\d{5,}"), "<nummer>"),
)
_NAMED = re.compile(
    rf"(?P<lead>\b(?:ich\s+hei(?:ß|ss)e|mein\s+name\s+ist|my\s+name\s+is)\s+)(?P<name>{_WORD})(?P<last>\s+(?-i:{_NAME}))?",
    re.I,
)
# "ich bin die ganze Zeit ..." is no name: after these, only a capitalised word counts
_INTRODUCED = re.compile(rf"(?P<lead>\b(?:[Ii]ch bin (?:der|die)|I am|I'm|i'm)\s+)(?:{_NAME})(?:\s+{_NAME})?")
_TITLED = re.compile(rf"\b(?P<lead>(?:Herrn?|Frau|Hr\.|Fr\.|Mr\.?|Mrs\.?|Ms\.?)\s+)(?:{_NAME})(?:\s+{_NAME})?")


def pseudonymise(text: str) -> str:
    """Replace what could identify a person with placeholders; keep the rest as the citizen wrote it."""
    for pattern, placeholder in PLACEHOLDERS:
        text = pattern.sub(placeholder, text)
    text = _NAMED.sub(lambda m: m.group("lead") + "<name>", text)
    text = _INTRODUCED.sub(lambda m: m.group("lead") + "<name>", text)
    text = _TITLED.sub(lambda m: m.group("lead") + "<name>", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class ReviewItem:
    """One message for the trainers, already pseudonymised."""

    text: str
    intent: str  # the best guess (or the officer's label)
    why: str  # German: why the message is in the file
    day: str
    channel: str


def _why(intent: str | None, confidence: float | None, action: str | None, relabel: str | None, below: float) -> str | None:
    conf = f"{confidence:.2f}" if confidence is not None else "-"
    if relabel:
        return f"von einer Beamtin/einem Beamten umbenannt, Bot las: {intent or '-'} ({conf}), Aktion {action or '-'}"
    if action == "clarify" or intent in NOT_UNDERSTOOD:
        return f"nicht verstanden: {intent or '-'} ({conf}), Aktion {action or '-'}"
    if action in ("answer", "handover") and confidence is not None and confidence < below:
        return f"unsicher beantwortet: {intent} ({conf}), Aktion {action}"
    return None


def collect(
    handover: object,
    guess: Callable[[str], str] | None = None,
    below: float = LOW_CONFIDENCE,
    since: str = "",
    known: Iterable[str] = (),
) -> list[ReviewItem]:
    """The messages to review, oldest first; `guess` names the model's best intent for a text."""
    seen = {re.sub(r"\W+", " ", t.lower()).strip() for t in known}
    items: list[ReviewItem] = []
    where = "direction = 'in' AND author = 'citizen' AND kind = 'text' AND text != '' AND created_at >= ?"
    for msg in handover.iter_messages(where, [since]):  # type: ignore[attr-defined]
        relabel = msg.meta.get("relabel")
        why = _why(msg.intent, msg.confidence, msg.action, relabel, below)
        if why is None or msg.action == "escalate":
            continue  # emergencies are handled by people and the safety net, not by the review file
        text = pseudonymise(msg.text)
        key = re.sub(r"\W+", " ", text.lower()).strip()
        if not key or (key in seen and not relabel):
            continue  # known already (trained on or exported above); an officer's correction always counts
        seen.add(key)
        intent = relabel or (guess(msg.text) if guess else msg.intent) or "nlu_fallback"
        items.append(ReviewItem(text, intent, why, msg.created_at[:10], msg.channel))
    return items


HEADER = """\
# Prüfliste aus dem Übergabe-Log: {count} Nachricht(en), erstellt {created}.
# Jede Nachricht steht in einem eigenen Block unter der besten Vermutung des Modells
# (bei umbenannten Nachrichten: unter dem Intent, den die Beamtin/der Beamte gewählt hat).
# So gehst du vor (mehr in TRAINING.md, Abschnitt "Die Prüfliste"):
#   1. Stimmt der Intent? Wenn nicht: den richtigen Intent eintragen.
#   2. Unbrauchbares löschen (Unsinn, doppelt, nur Emojis).
#   3. Platzhalter wie <telefon>, <email>, <name>, <straße> so lassen oder durch
#      ausgedachte Werte ersetzen. Nie echte Daten eintragen.
#   4. Die Beispielzeilen (mit "- ") in die passende Datei in data/nlu/ kopieren.
#   5. make validate, make train, make evaluate.
version: "3.1"
nlu:
"""


def render(items: list[ReviewItem], created: str) -> str:
    """The review file: a Rasa NLU YAML file with one commented block per message."""
    lines = [HEADER.format(count=len(items), created=created)]
    for item in sorted(items, key=lambda i: (i.intent, i.day)):
        lines.append(f"# {item.why} · {item.channel} · {item.day}\n- intent: {item.intent}\n  examples: |\n    - {item.text}\n")
    return "\n".join(lines)


def model_guess(model_path: Path) -> Callable[[str], str]:
    """The model's best intent other than nlu_fallback."""
    from nlu.model import NluModel

    model = NluModel.load(model_path)

    def guess(text: str) -> str:
        parse = model.parse_sync(text)
        return next((name for name, _ in parse.ranking if name != "nlu_fallback"), parse.intent)

    return guess


def export(handover: object, out_dir: Path, guess: Callable[[str], str] | None = None, below: float = LOW_CONFIDENCE,
           since: str = "", known: Iterable[str] = (), now: datetime | None = None) -> tuple[Path, int]:
    """Write reviews/<timestamp>.yml; return its path and how many messages it holds."""
    now = now or datetime.now(timezone.utc)
    items = collect(handover, guess, below, since, known)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{now:%Y-%m-%d_%H%M%S}.yml"
    path.write_text(render(items, f"{now:%Y-%m-%d %H:%M} UTC"), encoding="utf-8")
    return path, len(items)


def main(argv: list[str] | None = None) -> int:
    """Export the review file from the handover log of the settings (DATABASE_PATH)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "reviews")
    parser.add_argument("--below", type=float, default=LOW_CONFIDENCE, help="answers below this confidence count as unsure")
    parser.add_argument("--days", type=int, default=0, help="only the last N days (0: everything in the log)")
    parser.add_argument("--no-model", action="store_true", help="use the intent stored in the log instead of asking the model")
    args = parser.parse_args(argv)
    from bot.handover import HandoverLog
    from bot.settings import Settings

    settings = Settings.from_env()
    if not settings.database_path.is_file():
        print(f"no handover log at {settings.database_path}: nothing to review yet", file=sys.stderr)
        return 0
    guess = None
    if not args.no_model and settings.model_path.is_file():
        guess = model_guess(settings.model_path)
    since = (datetime.now(timezone.utc) - timedelta(days=args.days)).isoformat() if args.days else ""
    known = [e.text for e in read_dir(settings.data_dir / "nlu")]
    handover = HandoverLog.open(settings.database_path)
    try:
        path, count = export(handover, args.out, guess, args.below, since, known)
    finally:
        handover.close()
    print(f"{count} message(s) to review in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
