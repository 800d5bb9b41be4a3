"""`make evaluate`: cross-validation and held-out scores in one self-contained HTML report.

Writes reports/<timestamp>/report.html (pictures embedded) and scores.json, and compares
the scores with the previous report: which intents got better, which got worse.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import html
import io
import json
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from nlu.evaluate import Scores, score
from nlu.examples import read_dir, read_examples
from nlu.intents import ESCALATION_INTENTS, INTENTS

ROOT = Path(__file__).resolve().parent.parent
CHANGE = 0.02  # an F1 change smaller than this is noise


def _png(fig: object) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    import matplotlib.pyplot as plt

    plt.close(fig)  # type: ignore[arg-type]
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def confusion_image(scores: Scores, title: str) -> str:
    """Rows: the intent a message has; columns: what the model read. Darker = more messages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [i for i in INTENTS if i in scores.expected or i in scores.predicted]
    labels += sorted({*scores.expected, *scores.predicted} - set(labels))
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for e, p in zip(scores.expected, scores.predicted):
        matrix[index[e], index[p]] += 1
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.45 * len(labels) + 3, 0.45 * len(labels) + 2))
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    right = [c for c, e, p in zip(scores.confidences, scores.expected, scores.predicted) if e == p]
    wrong = [c for c, e, p in zip(scores.confidences, scores.expected, scores.predicted) if e != p]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist([right, wrong], bins=[i / 20 for i in range(21)], stacked=True, color=["#4a8", "#d54"], label=["richtig", "falsch"])
    ax.set_xlabel("Sicherheit des Modells (confidence)")
    ax.set_ylabel("Nachrichten")
    ax.set_title(title)
    ax.legend()
    return _png(fig)


def compare(now: dict[str, dict[str, float]], before: dict[str, dict[str, float]]) -> tuple[list[str], list[str]]:
    """Intents whose F1 rose or fell by at least CHANGE, as readable lines."""
    better, worse = [], []
    for intent in sorted(set(now) & set(before)):
        delta = now[intent]["f1"] - before[intent]["f1"]
        line = f"{intent}: F1 {before[intent]['f1']:.2f} → {now[intent]['f1']:.2f} ({delta:+.2f})"
        if delta >= CHANGE:
            better.append(line)
        elif delta <= -CHANGE:
            worse.append(line)
    return better, worse


def previous_scores(reports: Path, current: Path) -> tuple[Path, dict[str, object]] | None:
    """The newest earlier report's scores.json (report folders sort by time)."""
    earlier = sorted(p for p in reports.glob("*/scores.json") if p.parent.name < current.name)
    return (earlier[-1].parent, json.loads(earlier[-1].read_text(encoding="utf-8"))) if earlier else None


def _table(scores: Scores) -> str:
    rows = []
    for intent in [i for i in INTENTS if i in scores.per_intent] + sorted(set(scores.per_intent) - set(INTENTS)):
        r = scores.per_intent[intent]
        mark = ' class="bad"' if r["f1"] < 0.8 else ""
        rows.append(
            f"<tr{mark}><td>{html.escape(intent)}</td><td>{r['precision']:.2f}</td><td>{r['recall']:.2f}</td>"
            f"<td><b>{r['f1']:.2f}</b></td><td>{r['support']:.0f}</td></tr>"
        )
    return (
        "<table><tr><th>Intent</th><th>Precision</th><th>Recall</th><th>F1</th><th>Beispiele</th></tr>"
        + "".join(rows) + "</table>"
    )


def _misses(scores: Scores) -> str:
    if not scores.misses:
        return "<p>Keine. 🎉</p>"
    rows = "".join(
        f"<tr><td>{html.escape(m.text)}</td><td>{m.expected}</td><td>{m.predicted}</td><td>{m.confidence:.2f}</td><td>{m.action}</td></tr>"
        for m in sorted(scores.misses, key=lambda m: (m.expected, -m.confidence))
    )
    return f"<table><tr><th>Nachricht</th><th>richtig wäre</th><th>erkannt</th><th>Sicherheit</th><th>Aktion</th></tr>{rows}</table>"


def _big(scores: Scores, name: str) -> str:
    recall_class = "ok" if scores.escalation_recall >= 1.0 else "alarm"
    alarm_class = "ok" if scores.false_alarm_rate <= 0.02 else "alarm"
    missed = "".join(f"<li>{html.escape(t)}</li>" for t in scores.not_escalated)
    alarms = "".join(f"<li>{html.escape(t)}</li>" for t in scores.false_alarms)
    return (
        f'<div class="big"><div class="{recall_class}"><span>{scores.escalation_recall:.1%}</span>'
        f"Notfälle erkannt ({name})</div>"
        f'<div class="{alarm_class}"><span>{scores.false_alarm_rate:.1%}</span>Fehlalarme ({name})</div>'
        f'<div><span>{scores.macro_f1:.2f}</span>Macro-F1 ({name})</div></div>'
        + (f'<p class="alarm">Nicht eskaliert ({", ".join(ESCALATION_INTENTS)}):</p><ul>{missed}</ul>' if missed else "")
        + (f"<p>Fehlalarme (normale Nachricht, trotzdem eskaliert):</p><ul>{alarms}</ul>" if alarms else "")
    )


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
tr.bad td{background:#fde8e6}.big{display:flex;gap:2em;flex-wrap:wrap;margin:1em 0}
.big div{font-size:1.1em}.big span{display:block;font-size:3.2em;font-weight:bold}
.ok span{color:#287a3e}.alarm,.alarm span{color:#c0271b}img{max-width:100%}h2{margin-top:2em}
"""


def render(created: str, held_out: Scores | None, crossval: Scores | None, folds: int,
           better: list[str], worse: list[str], previous: str | None, meta: dict[str, str]) -> str:
    """The whole report as one HTML page (images inline: the file can be mailed or archived as is)."""
    parts = [f"<!doctype html><html lang=de><meta charset=utf-8><title>streife: Auswertung {created}</title>",
             f"<style>{STYLE}</style><h1>Auswertung vom {created}</h1>",
             "<p>" + " · ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in meta.items()) + "</p>"]
    if held_out is not None:
        parts.append(_big(held_out, "Testsatz"))
    if crossval is not None:
        parts.append(_big(crossval, f"Kreuzvalidierung, {folds} Teile"))
    parts.append("<h2>Besser oder schlechter als vorher?</h2>")
    if previous is None:
        parts.append("<p>Das ist der erste Bericht: noch nichts zum Vergleichen.</p>")
    else:
        parts.append(f"<p>Verglichen mit {html.escape(previous)} (F1 je Intent, Unterschiede ab {CHANGE:.2f}).</p>")
        parts.append("<h3>Besser</h3><ul>" + ("".join(f"<li>{html.escape(b)}</li>" for b in better) or "<li>keine</li>") + "</ul>")
        parts.append('<h3 class="alarm">Schlechter</h3><ul>' + ("".join(f"<li>{html.escape(w)}</li>" for w in worse) or "<li>keine</li>") + "</ul>")
    for scores, name, what in ((held_out, "Testsatz", "tests/test_nlu.yml: Nachrichten, die das Modell nie gesehen hat"),
                               (crossval, "Kreuzvalidierung", f"data/nlu in {folds} Teilen: jeder Teil von einem Modell bewertet, das ihn nicht kannte")):
        if scores is None:
            continue
        parts += [f"<h2>{name}</h2><p>{html.escape(what)}. {len(scores.expected)} Nachrichten, "
                  f"Genauigkeit {scores.accuracy:.1%}, Macro-F1 {scores.macro_f1:.3f}.</p>",
                  _table(scores), "<h3>Verwechslungen</h3>", confusion_image(scores, name),
                  "<h3>Wie sicher war das Modell?</h3>", histogram_image(scores, name),
                  "<h3>Falsch erkannte Nachrichten</h3>", _misses(scores)]
    return "\n".join(parts) + "\n</html>\n"


def write_report(out_root: Path, held_out: Scores | None, crossval: Scores | None, folds: int,
                 meta: dict[str, str], now: datetime | None = None) -> tuple[Path, list[str], list[str]]:
    """Write reports/<timestamp>/report.html and scores.json; return the folder and the changes."""
    now = now or datetime.now(timezone.utc)
    folder = out_root / f"{now:%Y-%m-%d_%H%M%S}"
    folder.mkdir(parents=True, exist_ok=False)
    main_scores = held_out or crossval
    better, worse, previous_name = [], [], None
    previous = previous_scores(out_root, folder)
    if previous is not None and main_scores is not None:
        key = "held_out" if held_out is not None else "crossval"
        before = previous[1].get(key) or {}
        better, worse = compare(main_scores.per_intent, before.get("per_intent", {}))  # type: ignore[union-attr]
        previous_name = previous[0].name
    body = {"created": now.isoformat(timespec="seconds"), "folds": folds, "meta": meta, "better": better, "worse": worse,
            "held_out": asdict(held_out) if held_out else None, "crossval": asdict(crossval) if crossval else None}
    (folder / "scores.json").write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    page = render(f"{now:%d.%m.%Y %H:%M} UTC", held_out, crossval, folds, better, worse, previous_name, meta)
    (folder / "report.html").write_text(page, encoding="utf-8")
    return folder, better, worse


def main(argv: list[str] | None = None) -> int:
    """Cross-validate config.yml, score the trained model on the held-out file, write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "nlu.tar.gz")
    parser.add_argument("--test", type=Path, default=ROOT / "tests" / "test_nlu.yml")
    parser.add_argument("--folds", type=int, default=5, help="0 skips the cross-validation (minutes) and scores the held-out file only")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs (quick runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    args = parser.parse_args(argv)
    from bot.services import build_triage
    from bot.settings import Settings
    from nlu.crossval import cross_validate, progress_bar
    from nlu.model import ModelHolder, NluModel

    settings = Settings.from_env()
    examples = read_dir(args.data)
    crossval = None
    if args.folds:
        bar = progress_bar(args.folds)
        crossval = cross_validate(args.config, examples, args.folds, args.epochs, settings, progress=bar).scores
        bar.close()  # type: ignore[attr-defined]
    held_out = None
    if args.model.is_file() and args.test.is_file():
        model = NluModel.load(args.model)
        held_out = asyncio.run(score(build_triage(settings, ModelHolder(model)), read_examples(args.test)))
    meta = {"config": args.config.name, "model": model.name if held_out else "-", "training examples": str(len(examples))}
    folder, better, worse = write_report(args.out, held_out, crossval, args.folds, meta)
    for name, scores in (("held-out", held_out), ("cross-validation", crossval)):
        if scores is not None:
            print(f"{name:17} {scores.summary()}")
    for line in better:
        print(f"  better: {line}")
    for line in worse:
        print(f"  WORSE:  {line}")
    print(f"report: {folder / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
