"""`make evaluate`: three sets side by side and the threshold curves in one self-contained HTML report.

The sets: 5-fold cross-validation of data/nlu, the held-out tests/test_nlu.yml, and the real
development set (REAL_EVAL_PATH; skipped with one line when absent). Writes
reports/<timestamp>/report.html (pictures embedded) and scores.json, and compares every
figure with the previous report. Thresholds are calibrated on the cross-validation only.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from nlu.calibrate import CHECK_ATTR, CHECK_BUDGET, RECALL_TARGET, WRONG_WEIGHT, Calibration
from nlu.eval_sets import SETS, Measured, console_lines
from nlu.evaluate import FAQ_INTENTS, Scores
from nlu.intents import ESCALATION_INTENTS, INTENTS

ROOT = Path(__file__).resolve().parent.parent
CHANGE = 0.02  # an F1 change smaller than this is noise
# (Scores attribute, label, higher is better); shown for every set, next to the previous report's value.
FIGURES = (
    ("macro_f1", "Macro-F1 (Intent)", True),
    ("accuracy", "Genauigkeit (Intent)", True),
    ("escalation_recall", "Notfälle eskaliert (emergency, self_harm)", True),
    ("false_alarm_rate", "Fehlalarme (andere Nachrichten eskaliert)", False),
    ("false_alarm_net", "… davon durch das Sicherheitsnetz", False),
    ("check_rate_danger", "Rückfrage „in Gefahr?“ bei Notfällen", False),
    ("check_rate_other", "Rückfrage „in Gefahr?“ bei anderen", False),
    ("faq_correct", "FAQ richtig beantwortet", True),
    ("not_understood", "„nicht verstanden“ (alle Nachrichten)", False),
)
ACTIONS = ("escalate", "check", "answer", "handover", "clarify")
# (column, action, sources): escalations split by what raised them
COLUMNS = (("escalate (Sicherheitsnetz)", "escalate", {"safety_net"}), ("escalate (Modell)", "escalate", {"model"}),
           *((a, a, None) for a in ACTIONS[1:]))


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


def _value(attr: str, value: float) -> str:
    return f"{value:.3f}" if attr == "macro_f1" else f"{value:.1%}"


def side_by_side(measured: Measured, before: dict[str, object] | None) -> str:
    """Every figure for the three sets, each with the previous report's value."""
    head = "".join(f"<th>{name}</th>" for _, name, _ in SETS)
    count = "".join(f"<td>{len(s.expected) if (s := measured.sets[k]) else '–'}</td>" for k, _, _ in SETS)
    rows = [f"<tr><th></th>{head}</tr>", f"<tr><td>Nachrichten</td>{count}</tr>"]
    for attr, label, higher in FIGURES:
        cells = []
        for key, _, _ in SETS:
            scores, old = measured.sets[key], ((before or {}).get(key) or {}).get(attr)  # type: ignore[union-attr]
            if scores is None:
                cells.append("<td>–</td>")
                continue
            now = getattr(scores, attr)
            note, mark = "", ""
            if isinstance(old, (int, float)):
                delta = now - old
                note = f' <small>(vorher {_value(attr, old)})</small>'
                mark = ' class="bad"' if (delta < -1e-9 if higher else delta > 1e-9) else ""
            cells.append(f"<td{mark}><b>{_value(attr, now)}</b>{note}</td>")
        rows.append(f"<tr><td>{label}</td>{''.join(cells)}</tr>")
    skipped = "".join(f"<p>{html.escape(name)}: {html.escape(measured.skipped[k])}</p>" for k, name, _ in SETS if k in measured.skipped)
    return "<table>" + "".join(rows) + "</table>" + skipped


def _table(scores: Scores) -> str:
    rows = []
    for intent in [i for i in INTENTS if i in scores.per_intent] + sorted(set(scores.per_intent) - set(INTENTS)):
        r = scores.per_intent[intent]
        mark = ' class="bad"' if r["f1"] < 0.8 else ""
        rows.append(f"<tr{mark}><td>{html.escape(intent)}</td><td>{r['precision']:.2f}</td><td>{r['recall']:.2f}</td>"
                    f"<td><b>{r['f1']:.2f}</b></td><td>{r['support']:.0f}</td></tr>")
    return ("<table><tr><th>Intent</th><th>Precision</th><th>Recall</th><th>F1</th><th>Beispiele</th></tr>"
            + "".join(rows) + "</table>")


def _actions(scores: Scores) -> str:
    """What triage did, by kind of message: a row per kind, a column per action (check is its own)."""
    kinds = (("Notfall, Selbstgefährdung", lambda e: e in ESCALATION_INTENTS), ("FAQ-Themen", lambda e: e in FAQ_INTENTS),
             ("alle anderen", lambda e: e not in ESCALATION_INTENTS and e not in FAQ_INTENTS))
    rows = []
    for name, belongs in kinds:
        acts = [(a, s) for e, a, s in zip(scores.expected, scores.actions, scores.sources) if belongs(e)]
        cells = "".join(f"<td>{sum(a == act and (srcs is None or s in srcs) for a, s in acts)}</td>" for _, act, srcs in COLUMNS)
        rows.append(f"<tr><td>{name}</td><td>{len(acts)}</td>{cells}</tr>")
    return ("<table><tr><th></th><th>Nachrichten</th>" + "".join(f"<th>{c}</th>" for c, _, _ in COLUMNS) + "</tr>"
            + "".join(rows) + "</table>")


def _misses(scores: Scores) -> str:
    if not scores.misses:
        return "<p>Keine. 🎉</p>"
    rows = "".join(
        f"<tr><td>{html.escape(m.text)}</td><td>{m.expected}</td><td>{m.predicted}</td><td>{m.confidence:.2f}</td><td>{m.action}</td></tr>"
        for m in sorted(scores.misses, key=lambda m: (m.expected, -m.confidence)))
    return f"<table><tr><th>Nachricht</th><th>richtig wäre</th><th>erkannt</th><th>Sicherheit</th><th>Aktion</th></tr>{rows}</table>"


def _big(scores: Scores, name: str) -> str:
    recall_class = "ok" if scores.escalation_recall >= 1.0 else "alarm"
    alarm_class = "ok" if scores.false_alarm_rate <= 0.02 else "alarm"
    missed = "".join(f"<li>{html.escape(t)}</li>" for t in scores.not_escalated)
    alarms = "".join(f"<li>{html.escape(t)}</li>" for t in scores.false_alarms)
    return (
        f'<div class="big"><div class="{recall_class}"><span>{scores.escalation_recall:.1%}</span>Notfälle eskaliert ({name})</div>'
        f'<div class="{alarm_class}"><span>{scores.false_alarm_rate:.1%}</span>Fehlalarme ({name})</div>'
        f'<div><span>{scores.faq_correct:.1%}</span>FAQ richtig ({name})</div>'
        f'<div><span>{scores.macro_f1:.2f}</span>Macro-F1 ({name})</div></div>'
        + (f'<p class="alarm">Nicht eskaliert ({", ".join(ESCALATION_INTENTS)}; Aktion check zählt nicht):</p><ul>{missed}</ul>' if missed else "")
        + (f"<p>Fehlalarme (normale Nachricht, trotzdem eskaliert):</p><ul>{alarms}</ul>" if alarms else ""))


def _languages(measured: Measured) -> str:
    """Per other language: escalation recall and false alarms on tests/multilingual; identification."""
    if not measured.languages:
        return "<h2>Andere Sprachen</h2><p>Keine Testsätze in tests/multilingual.</p>"
    rows = "".join(f"<tr><td>{html.escape(s.language)}</td><td>{s.recall:.1%} ({s.escalate - len(s.missed)}/{s.escalate})</td>"
                   f"<td>{s.false_alarms:.1%} ({len(s.alarms)}/{s.other})</td><td>{s.handed_over:.1%}</td>"
                   f"<td>{html.escape(', '.join(s.missed)) or '–'}</td></tr>" for s in measured.languages)
    ids = measured.identification
    found = (f"<p>Sprache richtig erkannt: {ids.overall:.1%} aller Nachrichten, {ids.three_words:.1%} ab drei Wörtern "  # type: ignore[attr-defined]
             f"({ids.p50_ms:.2f} ms Median, {ids.p99_ms:.2f} ms p99).</p>" if ids is not None else "")  # type: ignore[attr-defined]
    return ("<h2>Andere Sprachen (tests/multilingual)</h2><table><tr><th>Sprache</th><th>Notfälle erkannt</th>"
            "<th>Fehlalarme</th><th>Sonstiges an einen Menschen</th><th>Verpasste Notfälle</th></tr>" + rows + "</table>" + found)


def _calibration(cal: Calibration) -> str:
    from nlu.charts import check_curve, confidence_curve, escalation_curve

    rec, cur = cal.recommended, cal.current
    items = "".join(
        f"<li><b>{name} = {rec[key]:.2f}</b> (jetzt {cur[key]:.2f}): {html.escape(cal.why(key))}</li>"
        for key, name in (("escalation_threshold", "ESCALATION_THRESHOLD"), (CHECK_ATTR, "CHECK_THRESHOLD"),
                          ("confidence_threshold", "CONFIDENCE_THRESHOLD")) if rec.get(key) is not None)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in cal.notes)
    return (
        f"<h2>Schwellen (nur aus der Kreuzvalidierung, {cal.messages} Nachrichten)</h2>"
        f"<p>Jede Nachricht wurde von einem Modell gelesen, das sie nie gesehen hat, und mit anderen Schwellen neu durch die "
        f"Triage geschickt. Die Regeln: Eskalation: mindestens {RECALL_TARGET:.0%} der Notfälle eskaliert, dabei die wenigsten "
        f"Fehlalarme. Rückfrage-Band: die niedrigste Grenze, bei der höchstens {CHECK_BUDGET:.0%} der anderen Nachrichten "
        f"nachgefragt werden. Confidence: am wenigsten {WRONG_WEIGHT:g} × falsche Antworten + „nicht verstanden“. "
        f"Der echte Entwicklungssatz wird dafür nie benutzt.</p><ul>{items}{notes}</ul>"
        + escalation_curve(cal) + (check_curve(cal) if cal.check else "") + confidence_curve(cal))


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
tr.bad td,td.bad{background:#fde8e6}.big{display:flex;gap:2em;flex-wrap:wrap;margin:1em 0}small{color:#666}
.big div{font-size:1.1em}.big span{display:block;font-size:3.2em;font-weight:bold}svg{max-width:100%;height:auto;display:block}
.ok span{color:#287a3e}.alarm,.alarm span{color:#c0271b}img{max-width:100%}h2{margin-top:2em}
"""
WHAT = {
    "crossval": "data/nlu in {folds} Teilen: jeder Teil von einem Modell bewertet, das ihn nicht kannte",
    "held_out": "tests/test_nlu.yml: Nachrichten, die das Modell nie gesehen hat",
    "real": "echte Nachrichten, nur zum Messen: nie trainieren, nie Regeln daraus ableiten",
}


def render(created: str, measured: Measured, folds: int, changes: dict[str, tuple[list[str], list[str]]],
           previous: tuple[str, dict[str, object]] | None, meta: dict[str, str], calibration: Calibration | None) -> str:
    """The whole report as one HTML page (pictures inline: the file can be mailed or archived as is)."""
    from nlu.charts import confusion_image, histogram_image

    parts = [f"<!doctype html><html lang=de><meta charset=utf-8><title>streife: Auswertung {created}</title>",
             f"<style>{STYLE}</style><h1>Auswertung vom {created}</h1>",
             "<p>" + " · ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in meta.items()) + "</p>",
             "<h2>Drei Messungen nebeneinander</h2>",
             f"<p>Verglichen mit {html.escape(previous[0])}.</p>" if previous else "<p>Das ist der erste Bericht: noch nichts zum Vergleichen.</p>",
             side_by_side(measured, previous[1] if previous else None)]
    for key, name, _ in SETS:
        if (scores := measured.sets[key]) is not None:
            parts.append(_big(scores, name))
    parts.append("<h2>Besser oder schlechter als vorher?</h2>")
    if previous is None:
        parts.append("<p>Noch kein früherer Bericht.</p>")
    else:
        parts.append(f"<p>Verglichen mit {html.escape(previous[0])} (F1 je Intent, Unterschiede ab {CHANGE:.2f}).</p>")
        for key, name, _ in SETS:
            better, worse = changes.get(key, ([], []))
            if measured.sets[key] is not None:
                parts.append(f"<h3>{name}: besser</h3><ul>" + ("".join(f"<li>{html.escape(b)}</li>" for b in better) or "<li>keine</li>") + "</ul>")
                parts.append(f'<h3 class="alarm">{name}: schlechter</h3><ul>' + ("".join(f"<li>{html.escape(w)}</li>" for w in worse) or "<li>keine</li>") + "</ul>")
    parts.append(_languages(measured))
    if calibration is not None:
        parts.append(_calibration(calibration))
    for key, name, _ in SETS:
        if (scores := measured.sets[key]) is None:
            continue
        parts += [f"<h2>{name}</h2><p>{html.escape(WHAT[key].format(folds=folds))}. {len(scores.expected)} Nachrichten, "
                  f"Genauigkeit {scores.accuracy:.1%}, Macro-F1 {scores.macro_f1:.3f}.</p>",
                  _table(scores), "<h3>Was die Triage tat (erste Nachricht eines Gesprächs)</h3>", _actions(scores),
                  "<h3>Verwechslungen</h3>", confusion_image(scores, name),
                  "<h3>Wie sicher war das Modell?</h3>", histogram_image(scores, name),
                  "<h3>Falsch erkannte Nachrichten</h3>", _misses(scores)]
    return "\n".join(parts) + "\n</html>\n"


def write_report(out_root: Path, measured: Measured, folds: int, meta: dict[str, str],
                 calibration: Calibration | None = None, now: datetime | None = None) -> tuple[Path, dict[str, tuple[list[str], list[str]]]]:
    """Write reports/<timestamp>/report.html and scores.json; return the folder and per set the changed intents."""
    from dataclasses import asdict

    now = now or datetime.now(timezone.utc)
    folder = out_root / f"{now:%Y-%m-%d_%H%M%S}"
    folder.mkdir(parents=True, exist_ok=False)
    previous = previous_scores(out_root, folder)
    changes: dict[str, tuple[list[str], list[str]]] = {}
    for key, _, _ in SETS:
        scores, before = measured.sets[key], ((previous[1].get(key) or {}) if previous else {})  # type: ignore[union-attr]
        if scores is not None and before:
            changes[key] = compare(scores.per_intent, before.get("per_intent", {}))  # type: ignore[union-attr]
    body = {"created": now.isoformat(timespec="seconds"), "folds": folds, "meta": meta, "skipped": measured.skipped,
            "changes": {k: {"better": b, "worse": w} for k, (b, w) in changes.items()},
            **{k: (s.as_json() if (s := measured.sets[k]) else None) for k, _, _ in SETS},
            "calibration": asdict(calibration) if calibration else None,
            "languages": [{k: v for k, v in asdict(s).items() if k not in ("missed", "alarms")} for s in measured.languages],
            "identification": ({k: v for k, v in asdict(measured.identification).items() if k != "wrong"}  # type: ignore[arg-type]
                               if measured.identification is not None else None)}
    (folder / "scores.json").write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    page = render(f"{now:%d.%m.%Y %H:%M} UTC", measured, folds, changes,
                  (previous[0].name, previous[1]) if previous else None, meta, calibration)
    (folder / "report.html").write_text(page, encoding="utf-8")
    return folder, changes


def main(argv: list[str] | None = None) -> int:
    """Measure the three sets, calibrate the thresholds on the cross-validation, write the report."""
    from nlu.eval_sets import real_eval_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "nlu.tar.gz")
    parser.add_argument("--test", type=Path, default=ROOT / "tests" / "test_nlu.yml")
    parser.add_argument("--real", type=Path, default=None, help="the real development set (default: $REAL_EVAL_PATH or ../shared/eval/real_dev.tsv)")
    parser.add_argument("--folds", type=int, default=5, help="0 skips the cross-validation (minutes) and the calibration")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs (quick runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    args = parser.parse_args(argv)
    from bot.services import build_triage
    from bot.settings import Settings
    from nlu.calibrate import calibrate, fallback_threshold
    from nlu.crossval import progress_bar
    from nlu.eval_sets import measure

    settings = Settings.from_env()
    bar = progress_bar(args.folds) if args.folds else None
    measured = measure(args.config, args.data, args.model, args.test, args.real or real_eval_path(), args.folds,
                       args.epochs, settings, progress=bar)
    if bar is not None:
        bar.close()  # type: ignore[attr-defined]
    calibration = None
    if (cv := measured.sets["crossval"]) is not None:
        print(f"calibrating thresholds on {len(cv.samples)} cross-validated messages", file=sys.stderr)
        calibration = calibrate(build_triage(settings), cv.samples, floor=fallback_threshold(args.config))
    meta = {"config": args.config.name, "model": measured.model_name, "training examples": str(measured.training_examples)}
    folder, changes = write_report(args.out, measured, args.folds, meta, calibration)
    for line in console_lines(measured):
        print(line)
    for key, _, name in SETS:
        better, worse = changes.get(key, ([], []))
        print("".join(f"  {name} better: {line}\n" for line in better) + "".join(f"  {name} WORSE:  {line}\n" for line in worse), end="")
    for line in calibration.lines() if calibration else []:
        print(line)
    print(f"report: {folder / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
