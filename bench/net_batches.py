"""The blind German/English batches (bench/net_fresh_*.yml, bench/net_*_s16*.yml): what the safety net and the bot do.

A batch is a YAML list of `{text, intent, why}`; `intent` is emergency or self_harm (acute: should escalate) or
other (everyday: should not). For each batch one line: acute escalated (+ asked "in danger?") and everyday
escalated (+ asked), by the safety net alone (`check` rules ask) and, with `--bot`, by the whole bot
(`python -m bot triage`: safety net, model, thresholds; the NLU worker starts as in `make run`).
`--misses` lists the acute messages not escalated and the everyday ones escalated, with the rule that fired.

Run: .venv/bin/python -m bench.net_batches [FILE ...] [--bot] [--misses]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from bot.safety_net import SafetyNet

ROOT = Path(__file__).resolve().parent.parent
ACUTE = ("emergency", "self_harm")


def batches(paths: list[Path]) -> list[Path]:
    """The given files, or every blind batch under bench/."""
    return paths or sorted({*ROOT.glob("bench/net_fresh_*.yml"), *ROOT.glob("bench/net_*_s1[6-9]*.yml")})


def net_actions(net: SafetyNet, texts: list[str]) -> list[tuple[str | None, str | None]]:
    """(action, rule) of the safety net alone for each text; (None, None) when it stays quiet."""
    found = [net.explain(text, asking=True) for text in texts]
    return [(e.hit.action, e.hit.rule) if e else (None, None) for e in found]


def bot_actions(texts: list[str]) -> list[tuple[str | None, str | None]]:
    """(action, intent) of the whole bot for each text, one `bot triage` process for the batch."""
    lines = "\n".join(" ".join(text.split()) for text in texts) + "\n"
    done = subprocess.run([sys.executable, "-m", "bot", "triage"], input=lines, capture_output=True, text=True,
                          cwd=ROOT, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if len(rows) != len(texts):
        raise SystemExit(f"bot triage answered {len(rows)} of {len(texts)} lines:\n{done.stderr[-2000:]}")
    return [(row["action"], row["intent"]) for row in rows]


def summary(entries: list[dict], actions: list[tuple[str | None, str | None]]) -> str:
    """'acute 45 + 1 asked of 50 | everyday 0 + 0 asked of 50'."""
    def count(acute: bool, action: str) -> int:
        return sum(a == action for e, (a, _) in zip(entries, actions) if (e["intent"] in ACUTE) == acute)
    n_acute = sum(e["intent"] in ACUTE for e in entries)
    return (f"acute {count(True, 'escalate')} + {count(True, 'check')} asked of {n_acute} | "
            f"everyday {count(False, 'escalate')} + {count(False, 'check')} asked of {len(entries) - n_acute}")


def misses(entries: list[dict], actions: list[tuple[str | None, str | None]]) -> list[str]:
    """The acute messages not escalated and the everyday ones escalated, with what fired."""
    return [f"    {'missed' if e['intent'] in ACUTE else 'alarm '} {a or '-'} {why or ''}: {e['text']}"
            for e, (a, why) in zip(entries, actions) if (e["intent"] in ACUTE) != (a == "escalate")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--bot", action="store_true", help="also the whole bot (starts the NLU worker; 30 s a batch)")
    parser.add_argument("--misses", action="store_true", help="list what was missed and what raised an alarm")
    args = parser.parse_args(argv)
    net = SafetyNet.load(ROOT / "data" / "safety_net.yml")
    for path in batches(args.files):
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts = [e["text"] for e in entries]
        runs = [("net", net_actions(net, texts))] + ([("bot", bot_actions(texts))] if args.bot else [])
        for name, actions in runs:
            print(f"{path.name:28} {name}  {summary(entries, actions)}")
            if args.misses:
                print("\n".join(misses(entries, actions)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
