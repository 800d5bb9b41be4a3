"""Leave-one-round-out cross-validation: train on the other rounds of data/nlu, test on one round.

Random folds put near twins of each example into training (the same author wrote them the same
day), which flatters the model. Here the groups are the commits that wrote the examples (`git
blame -C -C -M` on data/nlu: the first data, the citizens'-styles round, the round for the weakest
intents, ...), so each round is scored by a model that never saw its authors' habits of that day.
The pipeline is a scikit-learn replica of config.yml (word 1-2-grams and char_wb 2-5-grams, TF-IDF,
balanced logistic regression, C = 30) and its variants; the real development set's macro-F1 is printed
next to it when that set is present (aggregates only). The model's top intent is scored, without
the safety net or thresholds: this compares pipelines, not the bot.

Run: .venv-nlu/bin/python -m bench.round_cv [--min-round 300]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.accuracy_baseline import baseline
from nlu.eval_sets import read_tsv, real_eval_path
from nlu.evaluate import f1_table
from nlu.examples import Example, read_dir

ROOT = Path(__file__).resolve().parent.parent
REPLICA = {"C": 30.0, "class_weight": "balanced"}  # config.yml
VARIANTS = {
    "config.yml (C = 30)": {},
    "C = 10": {"C": 10.0},
    "C = 3": {"C": 3.0},
    "C = 100": {"C": 100.0},
    "char 1-4-grams": {"chars": (1, 4)},
    "char 3-6-grams": {"chars": (3, 6)},
    "word unigrams": {"words": (1, 1)},
    "no class weights": {"class_weight": None},
}


def rounds(data: Path) -> dict[str, str]:
    """Example text -> the commit that wrote it (lines moved between files keep their first commit)."""
    found: dict[str, str] = {}
    for path in sorted(data.glob("*.yml")):
        blame = subprocess.run(["git", "blame", "-C", "-C", "-M", "--line-porcelain", str(path)],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout
        commit = ""
        for line in blame.splitlines():
            if re.match(r"^[0-9a-f]{40} ", line):
                commit = line[:7]
            elif line.startswith("\t") and line.strip().startswith("- "):
                found[line.strip()[2:].strip().strip("\"'")] = commit
    return found


def score(options: dict, train: list[Example], test: list[Example]) -> float:
    """Macro-F1 of the top intent on `test` for a model trained on `train`."""
    model = baseline(**{**REPLICA, **options}).fit([e.text for e in train], [e.intent for e in train])
    return f1_table([e.intent for e in test], list(model.predict([e.text for e in test])))[1]


def main(argv: list[str] | None = None) -> int:
    """Print one line per pipeline: macro-F1 per left-out round, their mean, and on the real set."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    parser.add_argument("--min-round", type=int, default=300, help="rounds with fewer examples stay in training only")
    args = parser.parse_args(argv)
    examples = read_dir(args.data)
    by_text = rounds(args.data)
    group = [by_text.get(e.text, "?") for e in examples]
    sizes = Counter(group)
    held = [g for g, n in sizes.most_common() if n >= args.min_round and g != "?"]
    real_path = real_eval_path()
    real = read_tsv(real_path) if real_path.exists() else []
    print(f"{len(examples)} examples; rounds left out in turn: " + ", ".join(f"{g} ({sizes[g]})" for g in held))
    print("real development set: " + (f"{len(real)} messages" if real else f"absent ({real_path}), skipped"))
    print("\n| pipeline | " + " | ".join(held) + " | mean | real set |")
    print("|---|" + "---|" * (len(held) + 2))
    for name, options in VARIANTS.items():
        per_round = [score(options, [e for e, g in zip(examples, group) if g != r],
                           [e for e, g in zip(examples, group) if g == r]) for r in held]
        real_f1 = f"{score(options, examples, real):.3f}" if real else "-"
        print(f"| {name} | " + " | ".join(f"{s:.3f}" for s in per_round)
              + f" | {statistics.mean(per_round):.3f} | {real_f1} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
