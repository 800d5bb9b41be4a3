"""The accuracy figures of `make evaluate`, one line per set: cross-validation, held-out, real development set.

Every message goes through the real triage (safety net, model, thresholds) as the first message
of a conversation. The real set (REAL_EVAL_PATH, default ../shared/eval/real_dev.tsv) is only
measured: its texts are never printed, and nothing is tuned on it.

Run: .venv-nlu/bin/python -m bench.accuracy_sets [--folds 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlu.crossval import progress_bar
from nlu.eval_sets import SETS, Measured, language_lines, measure, real_eval_path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = (
    ("n", lambda s: f"{len(s.expected)}"),
    ("macro-F1", lambda s: f"{s.macro_f1:.3f}"),
    ("escalated", lambda s: f"{s.escalation_recall:.1%}"),
    ("false alarms", lambda s: f"{s.false_alarm_rate:.1%}"),
    ("by safety net", lambda s: f"{s.false_alarm_net:.1%}"),
    ("check (danger)", lambda s: f"{s.check_rate_danger:.1%}"),
    ("check (other)", lambda s: f"{s.check_rate_other:.1%}"),
    ("FAQ right", lambda s: f"{s.faq_correct:.1%}"),
    ("not understood", lambda s: f"{s.not_understood:.1%}"),
)


def lines(measured: Measured) -> list[str]:
    """A header and one line per set (a skipped set says why); figures only, never a message."""
    out = [f"{'set':17}" + "".join(f"{name:>16}" for name, _ in COLUMNS)]
    for key, _, name in SETS:
        scores = measured.sets[key]
        if scores is None:
            out.append(f"{name:17} {measured.skipped.get(key, 'skipped')}")
        else:
            out.append(f"{name:17}" + "".join(f"{cell(scores):>16}" for _, cell in COLUMNS))
    return out + language_lines(measured)


def main(argv: list[str] | None = None) -> int:
    """Measure the three sets and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "nlu.tar.gz")
    parser.add_argument("--test", type=Path, default=ROOT / "tests" / "test_nlu.yml")
    parser.add_argument("--real", type=Path, default=None, help="default: $REAL_EVAL_PATH or ../shared/eval/real_dev.tsv")
    parser.add_argument("--folds", type=int, default=5, help="0 skips the cross-validation")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs (quick runs)")
    args = parser.parse_args(argv)
    bar = progress_bar(args.folds) if args.folds else None
    measured = measure(args.config, args.data, args.model, args.test, args.real or real_eval_path(), args.folds, args.epochs,
                       progress=bar)
    if bar is not None:
        bar.close()  # type: ignore[attr-defined]
    print("\n".join(lines(measured)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
