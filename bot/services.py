"""Build the bot's parts from settings: texts, safety net, model, triage, handover log, dispatcher."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.channels.base import LogOnlySender
from bot.dispatcher import Dispatcher
from bot.duty import DutyHours
from bot.handover import HandoverLog
from bot.responses import Responses
from bot.safety_net import SafetyNet
from bot.settings import Settings
from bot.triage import Triage
from nlu.model import ModelHolder

log = logging.getLogger(__name__)


def build_triage(settings: Settings, models: ModelHolder | None = None) -> Triage:
    """Triage with the texts and rules from settings.data_dir; the model is loaded separately."""
    return Triage(
        responses=Responses.load(settings.data_dir),
        safety_net=SafetyNet.load(settings.data_dir / "safety_net.yml"),
        models=models or ModelHolder(),
        duty=DutyHours.parse(settings.duty_hours, settings.timezone),
        confidence_threshold=settings.confidence_threshold,
        escalation_threshold=settings.escalation_threshold,
    )


@dataclass
class Services:
    """Everything a running bot shares: one of each per process."""

    settings: Settings
    triage: Triage
    handover: HandoverLog
    dispatcher: Dispatcher

    @property
    def models(self) -> ModelHolder:
        """The NLU model holder (None inside: safety-net mode)."""
        return self.triage.models

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        """Open the handover log and wire the dispatcher; the web chat is always a channel."""
        triage = build_triage(settings)
        handover = HandoverLog.open(settings.database_path, settings.pseudonym_key)
        dispatcher = Dispatcher(handover, triage, {"webchat": LogOnlySender()}, settings.disclosure_pause_hours,
                                settings.flood_messages)
        return cls(settings, triage, handover, dispatcher)
