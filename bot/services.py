"""Build the bot's parts from settings: texts, safety net, model, triage, handover log, dispatcher."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.channels.base import LogOnlySender
from bot.dispatcher import Dispatcher
from bot.duty import DutyHours
from bot.handover import HandoverLog
from bot.handover.stats_tables import ensure_zone
from bot.language import LanguageId
from bot.languages import Languages
from bot.responses import Responses
from bot.safety_net import SafetyNet
from bot.settings import Settings
from bot.decision import Parser
from bot.triage import Triage

log = logging.getLogger(__name__)


def build_triage(settings: Settings, parser: Parser | None = None) -> Triage:
    """Triage with the texts and rules from settings.data_dir; the model answers from the NLU workers."""
    languages = Languages.load(settings.data_dir / "languages", strict=False)
    identification = LanguageId(languages.markers())
    return Triage(
        responses=Responses.load(settings.data_dir),
        safety_net=SafetyNet.load(settings.data_dir / "safety_net.yml", strict=False),
        parser=parser,
        duty=DutyHours.parse(settings.duty_hours, settings.timezone),
        confidence_threshold=settings.confidence_threshold,
        escalation_threshold=settings.escalation_threshold,
        check_threshold=settings.check_threshold,
        languages=languages,
        identify=identification.identify,
        likeliest=identification.likeliest,
    )


@dataclass
class Services:
    """Everything a running bot shares: one of each per process."""

    settings: Settings
    triage: Triage
    handover: HandoverLog
    dispatcher: Dispatcher

    def model_status(self) -> dict[str, object]:
        """The NLU side's state for /healthz: which model answers, or why none does."""
        parser = self.triage.parser
        status = getattr(parser, "status", None)
        if callable(status):
            return status()
        ready = parser is not None and parser.ready
        return {"mode": "nlu" if ready else "safety_net", "model_version": None, "model_loading": False,
                "model_error": None, "model_rejected": None}

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        """Open the handover log and wire the dispatcher; the web chat is always a channel."""
        triage = build_triage(settings)
        handover = HandoverLog.open(settings.database, settings.pseudonym_key)
        if ensure_zone(handover.db, str(triage.duty.zone)):  # TIMEZONE changed: the dashboard's days, once, before serving
            log.info("dashboard figures rebuilt for TIMEZONE %s", triage.duty.zone)
        dispatcher = Dispatcher(handover, triage, {"webchat": LogOnlySender()}, settings.disclosure_pause_hours,
                                settings.flood_messages)
        return cls(settings, triage, handover, dispatcher)
