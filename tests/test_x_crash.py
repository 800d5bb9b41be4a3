"""SIGKILL `python -m bot serve` twice during a burst of 100 X DMs: nothing lost, doubles only where a reply was in flight.

X's DM endpoint has no idempotency key: a reply X created just before the kill, whose answer (or the bot's
"sent" mark) had not arrived, goes out again after the restart. Those are counted and printed; any other double,
and any DM without a reply, fails the test. bench/x_load.py runs the same burst (`--kills`).
"""

from __future__ import annotations

from bench.x_load import kill_run


async def test_two_sigkills_during_a_burst_of_100_dms_lose_nothing() -> None:
    result = await kill_run(kills=2, dms=100)
    print(result.line())
    assert 0 < result.replied_before_kill < 100, "the burst was over before the first kill"
    assert (result.lost, result.stored, result.unacknowledged) == ([], 100, 0)
    assert set(result.doubled) <= result.in_flight, f"answered twice without being in flight: {set(result.doubled) - result.in_flight}"
    assert result.emergencies_without_110 == 0
