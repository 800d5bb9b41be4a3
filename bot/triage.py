"""Triage: the one place that decides what the bot says to a citizen."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

from bot.danger_check import CHECK_NO, Checked, answer_to_check
from bot.decision import Context, Decision, Parser
from bot.duty import DutyHours
from bot.language import detect_language
from bot.languages import Languages
from bot.responses import Responses
from bot.safety_net import ESCALATION_INTENTS, SafetyHit, SafetyNet
from bot.text import clean
from nlu.parse import Parse

ACTIONS = ("answer", "escalate", "handover", "clarify", "check")
CALM_LINE_ACTIONS = frozenset({"clarify", "check", "handover"})  # replies that end with the one calm 110 line
HANDOVER_INTENTS = frozenset({"human_handoff", "tip_off", "domestic_violence"})
CLARIFY_INTENTS = frozenset({"out_of_scope", "nlu_fallback"})
FALLBACK = "nlu_fallback"
# Words the texts tell citizens to send for a person ("schreib „Mensch“", /mensch).
HANDOFF_WORDS = frozenset({"mensch", "/mensch", "person", "/person", "human", "/human", "agent"})


def asks_for_person(text: str) -> bool:
    """True for the one-word request for a person that the bot's texts suggest."""
    return text.strip(" .!\"'„“").lower() in HANDOFF_WORDS


def _checked(danger: str, parse: Parse) -> Checked:
    """What a check asks about: the danger, and the model's best reading besides danger (for a "no")."""
    other = next(((n, c) for n, c in parse.ranking if n not in ESCALATION_INTENTS and n != FALLBACK), (FALLBACK, 0.0))
    return Checked(danger, *other) if parse.intent != FALLBACK else Checked(danger, FALLBACK, parse.confidence)


class Triage:
    """Safety net first, then the NLU model, then the conversation's rules."""

    def __init__(
        self,
        responses: Responses,
        safety_net: SafetyNet,
        parser: Parser | None,
        duty: DutyHours,
        confidence_threshold: float = 0.5,
        escalation_threshold: float = 0.35,
        check_threshold: float = 0.15,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        languages: Languages | None = None,
        identify: Callable[[str, str], str] | None = None,
        likeliest: Callable[[str], str | None] | None = None,
    ) -> None:
        self.responses = responses
        self.safety_net = safety_net
        self.parser = parser
        self.duty = duty
        self.confidence_threshold = confidence_threshold
        self.escalation_threshold = escalation_threshold
        self.check_threshold = check_threshold  # danger at least this likely, below escalation_threshold: ask
        self.clock = clock
        self.languages = languages or Languages({})
        self.identify = identify or detect_language  # (text, default) -> "de", "en" or a code of `languages`
        self.likeliest = likeliest  # text -> the code of `languages` it most resembles, or None
        # Presence hook (bot/handover/accounts.py, in memory per instance): () -> is any officer online now?
        # None (no inbox running, tests, benches) keeps the plain duty-hours texts.
        self.team_online: Callable[[], bool] | None = None

    async def decide(self, text: str, context: Context = Context(), button: str | None = None) -> Decision:
        """Decide on one message; `button` is the intent of a pressed topic button.

        The safety net decides first: an escalation never waits for the model. Otherwise the
        model is asked with its deadline; without an answer the message goes to a person.
        """
        text = clean(text)
        language = self.identify(text, context.language or "de")
        answers_check = context.recent_actions[-1:] == ("check",) and answer_to_check(text) is not None
        if (button is not None or not text or asks_for_person(text) or answers_check or language in self.languages
                or self.safety_net.check(text) is not None or self.languages.check(text) is not None):
            return self.decide_with(text, context, None, model_ready=True, button=button, language=language)
        parse = await self.parser.parse(text) if self.parser is not None else None
        return self.decide_with(text, context, parse, model_ready=parse is not None, button=button, language=language)

    def decide_with(
        self,
        text: str,
        context: Context,
        parse: Parse | None,
        model_ready: bool = True,
        button: str | None = None,
        language: str | None = None,
    ) -> Decision:
        """Decide from an already computed model parse (None: no model); `language` as identified, if known.

        The model's confidence for the likelier of emergency and self_harm decides first: at least
        escalation_threshold escalates; at least check_threshold asks "in danger?" (`check`),
        and right after a check it escalates, as does a typed "ja"/"yes" or the danger button.
        A safety-net rule with `action: check` (a weaker sign) asks too, unless the model escalates;
        right after a check it escalates.
        """
        text = clean(text)
        language = language or self.identify(text, context.language or "de")
        hit, identified = self.safety_net.assess(text), language
        doubt = hit if hit is not None and hit.action == "check" else None
        hit = None if doubt is not None else hit
        if hit is None and (found := self.languages.check(text, first=self._first_net(text, language))) is not None:
            spoken, hit = found
            language = spoken.code
        if hit is not None:
            intent, confidence = hit.intent, 1.0
            if parse is not None and parse.intent in ESCALATION_INTENTS:
                intent = parse.intent
            if language in self.languages:
                return self._other_language(text, intent, "escalate", language, context, "safety_net", hit.rule, identified)
            return self._decision(text, intent, confidence, "escalate", language, context, "safety_net", hit.rule)
        if button is None and asks_for_person(text):
            button = "human_handoff"
        after_check = context.recent_actions[-1:] == ("check",)
        answer = answer_to_check(text) if after_check and button is None else None
        if button == CHECK_NO or answer == "no":
            return self._not_in_danger(text, language, context, "button" if button else "check")
        if answer == "yes":
            asked_about = context.checked.danger if context.checked else "emergency"
            return self._decision(text, asked_about, 1.0, "escalate", language, context, "check")
        if button is not None and button in self.responses.intents:
            return self._by_intent(text, button, 1.0, language, context, "button")
        if not text:
            return self._decision(text, FALLBACK, 0.0, "clarify", language, context, "empty")
        if answer == "unsure":
            return self._decision(text, FALLBACK, 0.0, "handover", language, context, "check")
        if language in self.languages:  # the model reads German and English only: a person answers
            return self._other_language(text, FALLBACK, "handover", language, context, "language")
        if parse is None and doubt is not None:
            return self._net_check(text, doubt, None, after_check, language, context)
        if parse is None:
            source = "no_model" if not model_ready else "model"
            return self._decision(text, FALLBACK, 0.0, "handover", language, context, source)
        escalation = max(ESCALATION_INTENTS, key=parse.confidence_of)
        danger = parse.confidence_of(escalation)
        if danger >= self.escalation_threshold or (after_check and danger >= self.check_threshold):
            return self._decision(text, escalation, danger, "escalate", language, context, "model")
        if doubt is not None:
            return self._net_check(text, doubt, parse, after_check, language, context)
        if danger >= self.check_threshold:
            checked = _checked(escalation, parse)
            return self._decision(text, escalation, danger, "check", language, context, "model", checked=checked)
        intent, confidence = next(
            ((name, conf) for name, conf in parse.ranking if name != FALLBACK), (parse.intent, parse.confidence)
        )
        if parse.intent == FALLBACK or confidence < self.confidence_threshold:
            intent = FALLBACK if intent != "out_of_scope" else intent
        return self._by_intent(text, intent, confidence, language, context, "model")

    def _net_check(
        self, text: str, doubt: SafetyHit, parse: Parse | None, after_check: bool, language: str, context: Context
    ) -> Decision:
        """A safety-net rule saw a weaker sign: ask "in danger?"; a second sign right after a check escalates."""
        if after_check:
            return self._decision(text, doubt.intent, 1.0, "escalate", language, context, "safety_net", doubt.rule)
        checked = _checked(doubt.intent, parse) if parse is not None else Checked(doubt.intent)
        return self._decision(text, doubt.intent, 1.0, "check", language, context, "safety_net", doubt.rule, checked=checked)

    def _by_intent(
        self, text: str, intent: str, confidence: float, language: str, context: Context, source: str, opening: str | None = None
    ) -> Decision:
        if intent in ESCALATION_INTENTS:
            action = "escalate"
        elif intent in HANDOVER_INTENTS:
            action = "handover"
        elif intent in CLARIFY_INTENTS:  # unclear twice in a row, or unclear after "in danger?": a person looks
            action = "handover" if opening or context.recent_actions[-1:] in (("clarify",), ("check",)) else "clarify"
        else:
            action = "answer"
        return self._decision(text, intent, confidence, action, language, context, source, opening=opening)

    def _not_in_danger(self, text: str, language: str, context: Context, source: str) -> Decision:
        """The citizen says no to "in danger?": thank them, then go on as a person would.

        When the model's best reading of the checked message besides danger was clear (an intent
        with a reply, at least confidence_threshold, not out_of_scope or nlu_fallback), the bot
        gives that reply: an answer, or a handover for handover intents. Otherwise (unclear, or
        the reading is unknown) a person looks at the chat: queued, with the calm 110 line. The
        message worried the model, so the bot does not ask the citizen to rephrase it.
        """
        checked = context.checked
        if (
            checked is not None
            and checked.intent in self.responses.intents
            and checked.intent not in CLARIFY_INTENTS
            and checked.intent not in ESCALATION_INTENTS
            and checked.confidence >= self.confidence_threshold
        ):
            return self._by_intent(text, checked.intent, checked.confidence, language, context, source, opening="check_no")
        return self._by_intent(text, FALLBACK, checked.confidence if checked else 0.0, language, context, source, opening="check_no")

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
        opening: str | None = None,
        checked: Checked | None = None,
    ) -> Decision:
        """Compose the reply; `opening` names a system text that goes first (e.g. the thanks after "no")."""
        r, parts, buttons = self.responses, [], ()
        if action == "escalate":
            parts = [r.system_text("emergency_prompt", language), r.intent(intent, language), r.system_text("escalate_alerted", language)]
        elif action == "check":
            parts = [r.system_text("check", language)]
            buttons = ((r.check_label("danger", language), intent), (r.check_label("safe", language), CHECK_NO))
        elif action == "clarify":
            parts = [r.intent(intent, language) if intent == "out_of_scope" else r.system_text("clarify", language)]
            buttons = tuple(r.topic_buttons(language)) + ((r.handoff(language), "human_handoff"),)
        elif action == "handover":
            if source == "no_model":
                parts = [r.system_text("safety_mode", language)]
            elif intent in CLARIFY_INTENTS:
                after_check = opening is not None or source == "check" or context.recent_actions[-1:] == ("check",)
                parts = [r.system_text("check_handover" if after_check else "clarify_handover", language)]
            else:
                parts = [r.intent(intent, language)]
            parts.append(self.handover_text(language))
        else:
            parts = [r.intent(intent, language)]
        if action in CALM_LINE_ACTIONS:
            parts.append(r.system_text("emergency_line", language))
        if opening is not None:
            parts.insert(0, r.system_text(opening, language))
        if context.first_contact:
            disclosure = r.system_text("disclosure", language)
            parts = parts[:1] + [disclosure] + parts[1:] if action == "escalate" else [disclosure] + parts
        return Decision(text, intent, confidence, action, "\n\n".join(parts), language, source, rule, buttons, checked)

    def _first_net(self, text: str, language: str) -> str | None:
        """Whose safety net to ask first: the identified language, else the one the text most resembles."""
        if language in self.languages:
            return language
        return self.likeliest(text) if self.likeliest is not None else None

    def _other_language(
        self, text: str, intent: str, action: str, language: str, context: Context, source: str,
        rule: str | None = None, identified: str | None = None,
    ) -> Decision:
        """A message in a language of data/languages/: its own texts; the officers take over.

        An escalation gets the language's 110 prompt, and the German (or English) one too when the
        rule and the identified language disagree (a German rule on a message read as Turkish, or
        a Turkish rule on a message read as German), in case either was wrong. Anything else gets
        "a person answers in German or English" once, then a short line while the chat waits.
        """
        languages = self.languages
        if action == "escalate":
            parts = [languages.text(language, intent)]
            if context.first_contact:
                parts.append(languages.text(language, "disclosure"))
            if identified is not None and identified != language:
                parts.append(self.responses.system_text("emergency_prompt", identified))
        else:
            again = context.language == language and context.recent_actions[-1:] in (("handover",), ("escalate",))
            parts = [languages.text(language, "other_again" if again else "other")]
        return Decision(text, intent, 1.0 if action == "escalate" else 0.0, action, "\n\n".join(parts), language, source, rule)

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
            if self.team_online is not None and not self.team_online():  # on duty, but nobody has the inbox open
                start = self.duty.next_start(now)
                if self.duty.on_duty(start - timedelta(seconds=2)):  # round the clock: no honest "at the latest"
                    return self.responses.system_text("handover_nobody_online_untimed", language)
                return self.responses.system_text("handover_nobody_online", language, back_at=self.duty.back_at(now, language))
            hint = "as soon as possible" if language == "en" else "so schnell wie möglich"
            return self.responses.system_text("handover_on_duty", language, wait_hint=hint)
        return self.responses.system_text("handover_off_duty", language, back_at=self.duty.back_at(now, language))
