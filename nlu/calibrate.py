"""Choose triage's thresholds from cross-validated parses only (never from the real development set).

Every message of the cross-validation was parsed by a fold model that never saw it. Here each
parse goes through the real triage again with other thresholds, and three curves come out:
escalation recall against false alarms (ESCALATION_THRESHOLD), emergencies caught by escalation
or the "are you in danger?" check against ordinary messages checked (CHECK_THRESHOLD), and
"did not understand", FAQ answered right and wrong replies against CONFIDENCE_THRESHOLD.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

import yaml

from nlu.evaluate import Sample, decide_all, outcome_rates

GRID = tuple(round(0.02 * i, 2) for i in range(1, 50))  # 0.02 ... 0.98
RECALL_TARGET = 0.95  # escalation: at least this share of emergency/self-harm messages escalated
CHECK_BUDGET = 0.05  # check band: at most this share of ordinary messages asked "are you in danger?"
WRONG_WEIGHT = 2.0  # confidence: a wrong answer costs twice as much as a "did not understand"
CHECK_ATTR = "check_threshold"  # Triage's attribute for the check band's lower bound
KEEP_WITHIN = 0.005  # a current value that meets its rule and is this close to the best stays (noise, not a change)


@dataclass
class Calibration:
    """The three curves (one dict of rates per threshold), the current and the recommended values."""

    escalation: list[dict[str, float]]
    check: list[dict[str, float]]
    confidence: list[dict[str, float]]
    current: dict[str, float | None]
    recommended: dict[str, float | None]
    notes: list[str] = field(default_factory=list)
    messages: int = 0

    def lines(self) -> list[str]:
        """The recommendation for the console."""
        rec, cur = self.recommended, self.current
        out = [f"thresholds from {self.messages} cross-validated messages (recommended, now):"]
        for key, name in (("escalation_threshold", "ESCALATION_THRESHOLD"), (CHECK_ATTR, "CHECK_THRESHOLD"),
                          ("confidence_threshold", "CONFIDENCE_THRESHOLD")):
            if rec.get(key) is not None:
                out.append(f"  {name:21} {rec[key]:.2f}  (now {cur[key]:.2f})  {self.why(key)}")
        return out + [f"  note: {n}" for n in self.notes]

    def at(self, curve: str, threshold: float | None) -> dict[str, float] | None:
        """The point of `curve` at `threshold`."""
        return _point(getattr(self, curve), threshold)

    def why(self, key: str) -> str:
        """The figures behind one recommendation."""
        value = self.recommended.get(key)
        if key == "escalation_threshold" and (p := self.at("escalation", value)):
            return f"escalation recall {p['escalation_recall']:.1%}, false alarms {p['false_alarm_rate']:.1%}"
        if key == CHECK_ATTR and (p := self.at("check", value)):
            return (f"escalated or checked {p['escalate_or_check']:.1%} of emergencies, "
                    f"ordinary messages checked {p['check_rate_other']:.1%}")
        if key == "confidence_threshold" and (p := self.at("confidence", value)):
            return (f"FAQ answered right {p['faq_correct']:.1%}, not understood {p['not_understood']:.1%}, "
                    f"wrong replies {p['wrong_reply']:.1%}")
        return ""


class RememberingNet:
    """The real safety net, asked once per text: its answer does not depend on any threshold."""

    def __init__(self, net: object) -> None:
        self.net = net
        self.seen: dict[str, object] = {}

    def check(self, text: str) -> object:
        """The net's hit for `text` (None: no rule fired)."""
        if text not in self.seen:
            self.seen[text] = self.net.check(text)  # type: ignore[attr-defined]
        return self.seen[text]

    def __getattr__(self, name: str) -> object:
        return getattr(self.net, name)


class RememberingLanguages(RememberingNet):
    """The other languages' nets, asked once per text and preferred language."""

    def check(self, text: str, first: str | None = None) -> object:
        """The first net that fires, as Languages.check."""
        key = f"{first}\x00{text}"
        if key not in self.seen:
            self.seen[key] = self.net.check(text, first)  # type: ignore[attr-defined]
        return self.seen[key]

    def __contains__(self, code: object) -> bool:
        return code in self.net  # type: ignore[operator]


def with_thresholds(triage: object, **values: float) -> object:
    """A copy of `triage` with other thresholds (the original is left alone)."""
    changed = copy.copy(triage)
    for name, value in values.items():
        if name == CHECK_ATTR and not hasattr(triage, CHECK_ATTR):
            continue
        setattr(changed, name, value)
    return changed


def sweep(triage: object, samples: list[Sample], name: str, grid: tuple[float, ...], **fixed: float) -> list[dict[str, float]]:
    """Rates of `outcome_rates` for each value of one threshold, the others fixed."""
    expected = [s.expected for s in samples]
    points = []
    for value in grid:
        values = {**fixed, name: value}
        if name == "escalation_threshold" and CHECK_ATTR in values:
            values[CHECK_ATTR] = min(values[CHECK_ATTR], value)  # the band lies below the escalation threshold
        actions, decided, _ = decide_all(with_thresholds(triage, **values), samples)
        points.append({"threshold": value, **outcome_rates(expected, actions, decided)})
    return points


def pick_escalation(points: list[dict[str, float]]) -> dict[str, float] | None:
    """The fewest false alarms among thresholds with recall >= RECALL_TARGET (the highest such threshold on a tie)."""
    good = [p for p in points if p["escalation_recall"] >= RECALL_TARGET]
    return min(good, key=lambda p: (p["false_alarm_rate"], -p["threshold"])) if good else None


def pick_check(points: list[dict[str, float]]) -> dict[str, float] | None:
    """The lowest bound (most emergencies caught) that checks at most CHECK_BUDGET of ordinary messages."""
    good = [p for p in points if p["check_rate_other"] <= CHECK_BUDGET]
    return min(good, key=lambda p: p["threshold"]) if good else None


def _cost(point: dict[str, float]) -> float:
    """What CONFIDENCE_THRESHOLD minimises: WRONG_WEIGHT x wrong replies + "did not understand"."""
    return round(WRONG_WEIGHT * point["wrong_reply"] + point["not_understood"], 9)


def pick_confidence(points: list[dict[str, float]]) -> dict[str, float] | None:
    """The least WRONG_WEIGHT x wrong replies + "did not understand" (the higher threshold on a tie)."""
    return min(points, key=lambda p: (_cost(p), -p["threshold"])) if points else None


def _point(points: list[dict[str, float]], threshold: float | None) -> dict[str, float] | None:
    """The point of a curve at `threshold` (None: not on the curve)."""
    return next((p for p in points if threshold is not None and abs(p["threshold"] - threshold) < 1e-9), None)


def _kept(notes: list[str], name: str, now: dict[str, float], best: dict[str, float], what: str,
          value: Callable[[dict[str, float]], float]) -> float:
    """Keep the current value (it meets its rule, and the best is not better by more than KEEP_WITHIN); say so."""
    if abs(now["threshold"] - best["threshold"]) > 1e-9:
        notes.append(f"{name} kept at {now['threshold']:.2f}: {best['threshold']:.2f} would change {what} only by "
                     f"{value(best) - value(now):+.2%} (within {KEEP_WITHIN:.1%}, the noise of cross-validation)")
    return now["threshold"]


def fallback_threshold(config: Path) -> float:
    """The FallbackClassifier's threshold in a Rasa config: below it CONFIDENCE_THRESHOLD changes nothing."""
    pipeline = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("pipeline") or []
    return next((float(c.get("threshold", 0.3)) for c in pipeline if c.get("name") == "FallbackClassifier"), 0.0)


def calibrate(triage: object, samples: list[Sample], grid: tuple[float, ...] = GRID, floor: float = 0.0) -> Calibration:
    """Sweep the three thresholds over cross-validated samples and recommend values.

    `floor` is the model's own fallback threshold: confidence thresholds below it are not tried.
    """
    triage = with_thresholds(triage)
    triage.safety_net = RememberingNet(triage.safety_net)  # type: ignore[attr-defined]
    if hasattr(triage, "languages"):  # the other languages' nets and identification: also threshold-free
        triage.languages = RememberingLanguages(triage.languages)  # type: ignore[attr-defined]
        triage.identify = functools.lru_cache(maxsize=None)(triage.identify)  # type: ignore[attr-defined]
    current = {"escalation_threshold": triage.escalation_threshold,  # type: ignore[attr-defined]
               CHECK_ATTR: getattr(triage, CHECK_ATTR, None),
               "confidence_threshold": triage.confidence_threshold}  # type: ignore[attr-defined]
    notes = []
    with_current = lambda key: tuple(sorted({*grid, *([current[key]] if current[key] is not None else [])}))  # noqa: E731
    band_now = {CHECK_ATTR: current[CHECK_ATTR]} if current[CHECK_ATTR] is not None else {}
    escalation = sweep(triage, samples, "escalation_threshold", with_current("escalation_threshold"), **band_now)
    best = pick_escalation(escalation)
    if best is None:
        notes.append(f"no threshold reaches {RECALL_TARGET:.0%} escalation recall in cross-validation: kept the current one")
    esc = best["threshold"] if best else current["escalation_threshold"]
    now = _point(escalation, current["escalation_threshold"])
    if best and now and now["escalation_recall"] >= RECALL_TARGET and now["false_alarm_rate"] - best["false_alarm_rate"] <= KEEP_WITHIN:
        esc = _kept(notes, "ESCALATION_THRESHOLD", now, best, "false alarms", itemgetter("false_alarm_rate"))
    check: list[dict[str, float]] = []
    band = None
    if current[CHECK_ATTR] is None:
        notes.append("this triage has no check band yet: CHECK_THRESHOLD not calibrated")
    else:
        bounds = tuple(b for b in with_current(CHECK_ATTR) if b < esc) + (esc,)
        check = sweep(triage, samples, CHECK_ATTR, bounds, escalation_threshold=esc)
        picked = pick_check(check)
        band = picked["threshold"] if picked else esc
        now = _point(check, current[CHECK_ATTR])
        if picked and now and now["check_rate_other"] <= CHECK_BUDGET and picked["escalate_or_check"] - now["escalate_or_check"] <= KEEP_WITHIN:
            band = _kept(notes, "CHECK_THRESHOLD", now, picked, "emergencies escalated or checked", itemgetter("escalate_or_check"))
    fixed = {"escalation_threshold": esc, **({CHECK_ATTR: band} if band is not None else {})}
    confidence = sweep(triage, samples, "confidence_threshold",
                       tuple(sorted({floor, *(v for v in with_current("confidence_threshold") if v > floor)})), **fixed)
    conf = pick_confidence(confidence)
    now = _point(confidence, current["confidence_threshold"])
    if conf and now and _cost(now) - _cost(conf) <= KEEP_WITHIN:
        conf = {**now, "threshold": _kept(notes, "CONFIDENCE_THRESHOLD", now, conf, "cost (2 x wrong + not understood)", _cost)}
    if floor > 0:
        notes.append(f"CONFIDENCE_THRESHOLD at or below {floor:.2f} (the FallbackClassifier's threshold in config.yml) "
                     "all act alike: the model itself falls back there")
    recommended = {"escalation_threshold": esc, CHECK_ATTR: band, "confidence_threshold": conf["threshold"] if conf else None}
    return Calibration(escalation, check, confidence, current, recommended, notes, len(samples))
