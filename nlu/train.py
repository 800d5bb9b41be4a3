"""Train the NLU model from data/nlu and config.yml into models/nlu.tar.gz."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from nlu.model import _quiet_rasa

ROOT = Path(__file__).resolve().parent.parent


def train(config: Path, data: Path, output: Path) -> float:
    """Train a model and move it into place atomically; return the seconds it took."""
    _quiet_rasa()
    from rasa.model_training import train_nlu

    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".train-") as tmp:
        result = train_nlu(str(config), str(data), tmp, fixed_model_name="model")
        if not result:
            raise SystemExit(f"training failed: Rasa wrote no model (check {data} and {config})")
        os.replace(result, output.with_suffix(".tmp"))
        os.replace(output.with_suffix(".tmp"), output)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Train from the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "nlu.tar.gz")
    args = parser.parse_args(argv)
    seconds = train(args.config, args.data, args.out)
    print(f"trained {args.out} in {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
