"""What the model read from one message: shared by the NLU worker and the service (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Parse:
    """The top intent, its confidence and the whole ranking."""

    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...] = field(default=())

    def confidence_of(self, intent: str) -> float:
        """The confidence the model gave `intent` (0 when it is not ranked)."""
        return next((c for name, c in self.ranking if name == intent), 0.0)

    def as_json(self) -> dict[str, Any]:
        """The wire form of the worker protocol."""
        return {"intent": self.intent, "confidence": self.confidence, "ranking": [list(r) for r in self.ranking]}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Parse":
        """Read the wire form; ValueError when it is not one."""
        try:
            ranking = tuple((str(name), float(conf)) for name, conf in body.get("ranking") or ())
            return cls(str(body["intent"]), float(body["confidence"]), ranking)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a parse: {err}") from None
