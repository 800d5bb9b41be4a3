"""The fixed intent names of DESIGN.md and the minimum number of training examples."""

from __future__ import annotations

INTENTS = (
    "greet", "goodbye", "thanks", "bot_challenge", "emergency", "self_harm", "domestic_violence",
    "report_crime", "tip_off", "lost_found", "bike_theft", "fraud_scam", "cybercrime", "traffic",
    "noise_complaint", "police_career", "station_contact", "human_handoff", "about_insta_cops",
    "insult", "out_of_scope",
)
ESCALATION_INTENTS = ("emergency", "self_harm")
MIN_EXAMPLES = 40
MIN_EXAMPLES_FOR = {"emergency": 60, "self_harm": 60, "out_of_scope": 60}
MIN_ENGLISH = 5


def minimum_examples(intent: str) -> int:
    """How many training examples an intent needs at least."""
    return MIN_EXAMPLES_FOR.get(intent, MIN_EXAMPLES)
