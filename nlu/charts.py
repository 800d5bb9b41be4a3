"""The report's pictures (matplotlib): confusion matrix and confidence histogram as PNG, threshold curves as inline SVG."""

from __future__ import annotations

import base64
import io

from nlu.calibrate import CHECK_ATTR, CHECK_BUDGET, RECALL_TARGET, Calibration
from nlu.evaluate import Scores
from nlu.intents import INTENTS


def _plt() -> object:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: object) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    _plt().close(fig)  # type: ignore[attr-defined]
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _svg(fig: object, name: str) -> str:
    """The figure as an <svg> element for inlining (unique ids per figure, text kept as text)."""
    plt = _plt()
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": name, "svg.fonttype": "none"}):  # type: ignore[attr-defined]
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[attr-defined]
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def confusion_image(scores: Scores, title: str) -> str:
    """Rows: the intent a message has; columns: what the model read. Darker = more messages."""
    plt = _plt()
    import numpy as np

    labels = [i for i in INTENTS if i in scores.expected or i in scores.predicted]
    labels += sorted({*scores.expected, *scores.predicted} - set(labels))
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for e, p in zip(scores.expected, scores.predicted):
        matrix[index[e], index[p]] += 1
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.45 * len(labels) + 3, 0.45 * len(labels) + 2))  # type: ignore[attr-defined]
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("vom Modell erkannt")
    ax.set_ylabel("richtig wäre")
    ax.set_title(title)
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            ax.text(col, row, str(count), ha="center", va="center", fontsize=7, color="white" if share[row, col] > 0.5 else "black")
    return _png(fig)


def histogram_image(scores: Scores, title: str) -> str:
    """How sure the model was, for right and for wrong readings."""
    plt = _plt()
    right = [c for c, e, p in zip(scores.confidences, scores.expected, scores.predicted) if e == p]
    wrong = [c for c, e, p in zip(scores.confidences, scores.expected, scores.predicted) if e != p]
    fig, ax = plt.subplots(figsize=(7, 3.2))  # type: ignore[attr-defined]
    ax.hist([right, wrong], bins=[i / 20 for i in range(21)], stacked=True, color=["#4a8", "#d54"], label=["richtig", "falsch"])
    ax.set_xlabel("Sicherheit des Modells (confidence)")
    ax.set_ylabel("Nachrichten")
    ax.set_title(title)
    ax.legend()
    return _png(fig)


def _mark(ax: object, points: list[dict[str, float]], x: str, y: str, value: float | None, label: str, color: str) -> None:
    point = next((p for p in points if value is not None and abs(p["threshold"] - value) < 1e-9), None)
    if point is not None:
        ax.plot([100 * point[x]], [100 * point[y]], "o", color=color, markersize=9, label=f"{label}: {value:.2f}", zorder=3)  # type: ignore[attr-defined]


def _trade_off(cal: Calibration, curve: str, key: str, x: str, y: str, xlabel: str, ylabel: str, title: str,
               target: tuple[str, float]) -> str:
    points = getattr(cal, curve)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))  # type: ignore[attr-defined]
    ax.plot([100 * p[x] for p in points], [100 * p[y] for p in points], "-", color="#357", marker=".", markersize=4)
    for p in points:
        if round(p["threshold"] * 100) % 10 == 0:
            ax.annotate(f"{p['threshold']:.1f}", (100 * p[x], 100 * p[y]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    axis, limit = target
    (ax.axhline if axis == "y" else ax.axvline)(100 * limit, color="#999", linestyle="--", linewidth=1)
    _mark(ax, points, x, y, cal.current.get(key), "jetzt", "#e80")
    _mark(ax, points, x, y, cal.recommended.get(key), "empfohlen", "#287a3e")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _svg(fig, curve)


def escalation_curve(cal: Calibration) -> str:
    """Escalation recall against false alarms as ESCALATION_THRESHOLD moves (numbers on the line: the threshold)."""
    return _trade_off(cal, "escalation", "escalation_threshold", "false_alarm_rate", "escalation_recall",
                      "Fehlalarme: andere Nachrichten eskaliert (%)", "Notfälle eskaliert (%)",
                      "ESCALATION_THRESHOLD", ("y", RECALL_TARGET))


def check_curve(cal: Calibration) -> str:
    """Emergencies escalated or checked against ordinary messages checked, as CHECK_THRESHOLD moves."""
    return _trade_off(cal, "check", CHECK_ATTR, "check_rate_other", "escalate_or_check",
                      "andere Nachrichten mit Rückfrage „in Gefahr?“ (%)", "Notfälle eskaliert oder nachgefragt (%)",
                      f"CHECK_THRESHOLD (Rückfrage-Band; ESCALATION_THRESHOLD {cal.recommended['escalation_threshold']:.2f})",
                      ("x", CHECK_BUDGET))


def confidence_curve(cal: Calibration) -> str:
    """"Did not understand", FAQ answered right and wrong replies against CONFIDENCE_THRESHOLD."""
    plt = _plt()
    points = cal.confidence
    fig, ax = plt.subplots(figsize=(7, 4))  # type: ignore[attr-defined]
    xs = [p["threshold"] for p in points]
    for key, label, color in (("faq_correct", "FAQ richtig beantwortet", "#287a3e"),
                              ("not_understood", "„nicht verstanden“", "#357"),
                              ("wrong_reply", "falsche Antwort oder Übergabe", "#c0271b")):
        ax.plot(xs, [100 * p[key] for p in points], label=label, color=color)
    for key, label, color in (("current", "jetzt", "#e80"), ("recommended", "empfohlen", "#287a3e")):
        value = getattr(cal, key).get("confidence_threshold")
        if value is not None:
            ax.axvline(value, color=color, linestyle="--", linewidth=1.2, label=f"{label}: {value:.2f}")
    ax.set_xlabel("CONFIDENCE_THRESHOLD")
    ax.set_ylabel("% der Nachrichten")
    ax.set_title("CONFIDENCE_THRESHOLD")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _svg(fig, "confidence")
