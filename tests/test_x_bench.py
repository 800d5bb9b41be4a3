"""A tiny run of bench/x_load.py (seconds, small counts), so the X bench does not rot; it asserts no speed."""

from __future__ import annotations

from bench import x_load


async def test_x_load_gets_one_reply_for_every_dm() -> None:
    result = await x_load.run(messages=10, rate=20, model=False)
    assert (result["replies"], result["mode"]) == (10, "safety_net")
    assert 0 < result["ack_p50_ms"] and result["reply_p99_ms"] >= result["reply_p50_ms"] > 0
