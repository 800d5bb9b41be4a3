"""A tiny run of bench/mastodon_load.py (like tests/test_bench_smoke.py for the other benches): it must not rot.

The figures are in bench/RESULTS.md; nothing here asserts a speed.
"""

from __future__ import annotations

from bench.mastodon_load import run


async def test_mastodon_load_pairs_every_dm_with_its_reply() -> None:
    result = await run(messages=10, rate=20)
    assert result["replies"] == 10 and 0 < result["reply_p50_ms"] <= result["reply_p99_ms"] <= result["reply_max_ms"]
