"""Triage: the one place that decides what the bot says to a citizen."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from bot.duty import DutyHours
from bot.language import detect_language
from bot.responses import Responses
from bot.safety_net import ESCALATION_INTENTS, SafetyNet
from bot.text import clean
from nlu.model import ModelHolder, Parse

ACTIONS = ("answer", "escalate", "handover", "clarify")
HANDOVER_INTENTS = frozenset({"human_handoff", "tip_off", "domestic_violence"})
CLARIFY_INTENTS = frozenset({"out_of_scope", "nlu_fallback"})
FALLBACK = "nlu_fallback"
# Words the texts tell citizens to send for a person ("schreib „Mensch“", /mensch).
HANDOFF_WORDS = frozenset({"mensch", "/mensch", "person", "/person", "human", "/human", "agent"})


def asks_for_person(text: str) -> bool:
    """True for the one-word request for a person that the bot's texts suggest."""
    return text.strip(" .!\"'„“").lower() in HANDOFF_WORDS


@dataclass(frozen=True)
class Context:
    """What triage needs to know about the conversation besides the message."""

    recent_actions: tuple[str, ...] = ()  # the bot's earlier actions in this chat, oldest first
    first_contact: bool = False  # the citizen writes for the first time: say it is a bot
    language: str | None = None  # the language the citizen used before, if known


@dataclass(frozen=True)
class Decision:
    """What the bot does with one message."""

    text: str
    intent: str
    confidence: float
    action: str
    reply: str
    language: str
    source: str = "model"  # model | safety_net | button | no_model | empty
    rule: str | None = None  # the safety-net rule that fired
    buttons: tuple[tuple[str, str], ...] = field(default=())  # (label, intent) topic buttons

    @property
    def escalated(self) -> bool:
        """True for an emergency or self-harm escalation."""
        return self.action == "escalate"

    def as_dict(self) -> dict[str, object]:
        """The stable JSON shape of `bot triage`."""
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "action": self.action,
            "reply": self.reply,
            "language": self.language,
        }

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(self.as_dict(), ensure_ascii=False)


class Triage:
    """Safety net first, then the NLU model, then the conversation's rules."""

    def __init__(
        self,
        responses: Responses,
        safety_net: SafetyNet,
        models: ModelHolder,
        duty: DutyHours,
        confidence_threshold: float = 0.5,
        escalation_threshold: float = 0.35,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.responses = responses
        self.safety_net = safety_net
        self.models = models
        self.duty = duty
        self.confidence_threshold = confidence_threshold
        self.escalation_threshold = escalation_threshold
        self.clock = clock

    async def decide(self, text: str, context: Context = Context(), button: str | None = None) -> Decision:
        """Decide on one message; `button` is the intent of a pressed topic button."""
        text = clean(text)
        model = self.models.model
        parse = await model.parse(text) if model is not None and text and button is None and not asks_for_person(text) else None
        return self.decide_with(text, context, parse, model_ready=model is not None, button=button)

    def decide_with(
        self,
        text: str,
        context: Context,
        parse: Parse | None,
        model_ready: bool = True,
        button: str | None = None,
    ) -> Decision:
        """Decide from an already computed model parse (None: no model)."""
        text = clean(text)
        language = detect_language(text, default=context.language or "de")
        hit = self.safety_net.check(text)
        if hit is not None:
            intent, confidence = hit.intent, 1.0
            if parse is not None and parse.intent in ESCALATION_INTENTS:
                intent = parse.intent
            return self._decision(text, intent, confidence, "escalate", language, context, "safety_net", hit.rule)
        if button is None and asks_for_person(text):
            button = "human_handoff"
        if button is not None and button in self.responses.intents:
            return self._by_intent(text, button, 1.0, language, context, "button")
        if not text:
            return self._decision(text, FALLBACK, 0.0, "clarify", language, context, "empty")
        if parse is None:
            source = "no_model" if not model_ready else "model"
            return self._decision(text, FALLBACK, 0.0, "handover", language, context, source)
        escalation = max(ESCALATION_INTENTS, key=parse.confidence_of)
        if parse.confidence_of(escalation) >= self.escalation_threshold:
            return self._decision(text, escalation, parse.confidence_of(escalation), "escalate", language, context, "model")
        intent, confidence = next(
            ((name, conf) for name, conf in parse.ranking if name != FALLBACK), (parse.intent, parse.confidence)
        )
        if parse.intent == FALLBACK or confidence < self.confidence_threshold:
            intent = FALLBACK if intent != "out_of_scope" else intent
        return self._by_intent(text, intent, confidence, language, context, "model")

    def _by_intent(self, text: str, intent: str, confidence: float, language: str, context: Context, source: str) -> Decision:
        if intent in ESCALATION_INTENTS:
            action = "escalate"
        elif intent in HANDOVER_INTENTS:
            action = "handover"
        elif intent in CLARIFY_INTENTS:
            action = "handover" if context.recent_actions[-1:] == ("clarify",) else "clarify"
        else:
            action = "answer"
        return self._decision(text, intent, confidence, action, language, context, source)

    def _decision(
        self,
        text: str,
        intent: str,
        confidence: float,
        action: str,
        language: str,
        context: Context,
        source: str,
        rule: str | None = None,
    ) -> Decision:
        r, parts, buttons = self.responses, [], ()
        if action == "escalate":
            parts = [r.system_text("emergency_prompt", language), r.intent(intent, language), r.system_text("escalate_alerted", language)]
        elif action == "clarify":
            parts = [r.intent(intent, language) if intent == "out_of_scope" else r.system_text("clarify", language)]
            buttons = tuple(r.topic_buttons(language)) + ((r.handoff_label[language], "human_handoff"),)
        elif action == "handover":
            if source == "no_model":
                parts = [r.system_text("safety_mode", language)]
            elif intent in CLARIFY_INTENTS:
                parts = [r.system_text("clarify_handover", language)]
            else:
                parts = [r.intent(intent, language)]
            parts.append(self.handover_text(language))
        else:
            parts = [r.intent(intent, language)]
        if context.first_contact:
            disclosure = r.system_text("disclosure", language)
            parts = parts[:1] + [disclosure] + parts[1:] if action == "escalate" else [disclosure] + parts
        return Decision(text, intent, confidence, action, "\n\n".join(parts), language, source, rule, buttons)

    def media(self, kind: str, context: Context = Context()) -> Decision:
        """Answer a message without text (photo, voice, location, ...): the bot reads text only."""
        language = context.language or "de"
        key = {"voice": "voice", "audio": "voice", "video_note": "voice", "location": "location", "contact": "location"}.get(kind, "non_text")
        reply = self.responses.system_text(key, language)
        if context.first_contact:
            reply = self.responses.system_text("disclosure", language) + "\n\n" + reply
        return Decision("", "", 0.0, "answer", reply, language, "media")

    def handover_text(self, language: str) -> str:
        """Who takes over and when, by the duty hours."""
        now = self.clock()
        if self.duty.on_duty(now):
            hint = "as soon as possible" if language == "en" else "so schnell wie möglich"
            return self.responses.system_text("handover_on_duty", language, wait_hint=hint)
        return self.responses.system_text("handover_off_duty", language, back_at=self.duty.back_at(now, language))
