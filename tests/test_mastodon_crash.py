"""SIGKILL `python -m bot serve` twice while 100 Mastodon DMs arrive: none lost, none answered twice.

The bot is killed while it answers (replies in flight, DMs stored but not decided, notifications not fetched);
after each restart it fetches what the stream missed from its stored cursor and the recovery loop sends what
is pending. A resend carries the same Idempotency-Key, so the instance returns the first status instead of
posting it again: doubles stay at 0 (without the key they would be limited to the replies in flight).
"""

from __future__ import annotations

from bench.mastodon_load import kill_run


async def test_two_kills_during_a_burst_of_100_dms_lose_nothing_and_double_nothing() -> None:
    result = await kill_run(kills=2, messages=100)
    print(f"\nMastodon crash run: {result}")
    assert result["offered"] == 100 and 0 < result["first_kill_at"] <= result["last_kill_at"] < 100, "the kills missed the burst"
    assert result["lost"] == 0
    assert result["doubled"] == 0, f"{result['doubled']} citizens got a reply twice"
