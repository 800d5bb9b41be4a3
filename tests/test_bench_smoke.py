"""A tiny run of every benchmark in bench/ (seconds, small counts), so `make bench` does not rot.

The figures themselves are in bench/RESULTS.md; nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from bench import (compare_rasa, inbox_latency, instagram_load, rasa_stack, startup, telegram_load,
                   triage_latency)
from bench.load import bench_texts
from nlu.intents import INTENTS
from bot.settings import ROOT


def test_our_server_answers_every_message_of_a_short_load(tmp_path: Path) -> None:
    results = compare_rasa.bench_ours([20], seconds=1, citizens=5, model=tmp_path / "none.tar.gz", mode="safety_net")
    (run,) = results
    assert (run.sent, run.ok, run.failed) == (20, 20, 0)
    assert len(run.latencies_ms) == 20 and run.cpu_s > 0 and 50 < run.peak_rss_mb
    table = compare_rasa.table(results, [])
    assert "| 20 | ours |" in table


def test_rasas_own_server_is_trained_from_our_pipeline_and_answers_a_short_load() -> None:
    """`rasa train` and `rasa run` with config.yml's custom classifier (trained once, cached in bench/out)."""
    (run,) = compare_rasa.bench_rasa([10], seconds=1, citizens=5)
    assert (run.sent, run.ok, run.failed) == (10, 10, 0)
    assert run.cpu_s > 0 and run.peak_rss_mb > 300  # Rasa with its model loaded


def test_startup_measures_the_first_emergency_answer_without_a_model(tmp_path: Path) -> None:
    run = startup.our_startup(model=tmp_path / "none.tar.gz", timeout=60)
    assert "110" in run.emergency_reply
    assert 0 < run.first_emergency_s == run.first_nlu_s


def test_rasa_project_maps_every_intent_to_its_own_response(tmp_path: Path) -> None:
    out = rasa_stack.write_project(tmp_path / "rasa")
    domain = yaml.safe_load((out / "domain.yml").read_text())
    rules = yaml.safe_load((out / "data" / "rules.yml").read_text())["rules"]
    config = yaml.safe_load((out / "config.yml").read_text())
    ours = yaml.safe_load((ROOT / "config.yml").read_text())
    assert set(domain["intents"]) == set(INTENTS)
    assert {r["steps"][0]["intent"]: r["steps"][1]["action"] for r in rules} == {
        i: f"utter_{i}" for i in [*INTENTS, "nlu_fallback"]}
    assert set(domain["responses"]) == {f"utter_{i}" for i in [*INTENTS, "nlu_fallback"]}
    assert config["pipeline"] == ours["pipeline"] and config["policies"] == [{"name": "RulePolicy"}]
    assert "rest" in yaml.safe_load((out / "credentials.yml").read_text())
    assert len(list((out / "data").glob("nlu_*.yml"))) == len(list((ROOT / "data" / "nlu").glob("*.yml")))


def test_load_texts_are_the_held_out_and_training_messages() -> None:
    texts = bench_texts()
    assert len(texts) > 2000 and all(isinstance(t, str) and t for t in texts)


def test_telegram_load_pairs_every_update_with_its_reply() -> None:
    results = asyncio.run(telegram_load.rate_runs([10], seconds=1, citizens=5, max_rate=30))
    (run,) = results
    assert (run.sent, run.ok, run.failed) == (10, 10, 0)
    assert all(0 < ms < 30_000 for ms in run.latencies_ms) and run.peak_rss_mb > 300  # the model is loaded


def test_telegram_kill_run_counts_lost_and_doubled_replies() -> None:
    offered, lost, doubled = asyncio.run(telegram_load.kill_run(kills=1, messages=20))
    assert offered == 20 and lost == 0 and 0 <= doubled <= 1  # at least once: one reply in flight may repeat


def test_inbox_latency_times_reply_stream_and_alert_for_each_emergency(capsys) -> None:
    asyncio.run(inbox_latency.main(runs=2, use_model=False))
    out = capsys.readouterr().out
    for name in ("reply", "sse", "shown", "alert"):
        assert f"{name:<6} n=  2" in out


def test_officers_day_times_every_inbox_page_on_a_generated_log(capsys) -> None:
    from bench import officers_day

    results = asyncio.run(officers_day.main(smoke=True))
    assert set(results) == {"queue", "conversation", "stats", "search"}
    for name in ("queue", "conversation", "search"):
        assert results[name]["n"] == 20 and results[name]["statuses"] == [200] and results[name]["p95"] > 0
    assert "1,000 conversations / 10,000 messages" in capsys.readouterr().out


def test_instagram_load_gets_a_reply_for_every_webhook_message() -> None:
    result = asyncio.run(instagram_load.run(messages=10, rate=20))
    assert result["replies"] == 10 and result["ack_p50_ms"] > 0 and result["reply_p99_ms"] >= result["reply_p50_ms"]


def test_comments_load_acts_on_every_emergency_comment_once() -> None:
    from bench import comments_load

    result = asyncio.run(comments_load.run(comments=30, seconds=2, use_model=False))
    assert result["stored"] == 30 and result["lost"] == 0 and result["doubled"] == 0
    assert result["emergency_n"] == result["mix"].get("emergency", 0) > 0 and result["action_p99_ms"] > 0


def test_triage_latency_runs_the_model_over_real_messages(capsys) -> None:
    asyncio.run(triage_latency.measure(20))
    out = capsys.readouterr().out
    assert "triage latency over 20 messages" in out and "peak RSS" in out


def test_nlu_throughput_parses_every_message_with_two_workers() -> None:
    from bench import nlu_throughput

    rate, median_ms, missed = asyncio.run(nlu_throughput.measure(workers=2, messages=40, concurrency=4))
    assert missed == 0 and rate > 0 and median_ms > 0


def test_two_instances_bench_measures_throughput_latency_and_takeover(capsys) -> None:
    from bench import two_instances

    results = asyncio.run(two_instances.main([], smoke=True))
    assert set(results) == {"sqlite-1", "pg-2"}
    for run in results.values():
        assert run["throughput"]["lost"] == 0 and run["throughput"]["per_s"] > 0
        assert run["latency"]["lost"] == 0 and run["latency"]["p99_ms"] >= run["latency"]["p50_ms"] > 0
        assert len(run["takeover"]) == 1 and 0 < run["takeover"][0] < 30
    assert "pg-2: polling takeover" in capsys.readouterr().out


def test_net_batches_counts_what_the_net_escalates_asks_and_misses(tmp_path: Path, capsys) -> None:
    from bench import net_batches

    batch = tmp_path / "net_fresh_tiny.yml"
    batch.write_text(yaml.safe_dump([
        {"text": "hilfe mein mann sticht gerade mit dem messer auf mich ein", "intent": "emergency", "why": "knife"},
        {"text": "wo kann ich mein gefundenes fahrrad abgeben", "intent": "emergency", "why": "mislabelled"},
        {"text": "wie lange dauert eine anzeige wegen fahrraddiebstahl", "intent": "other", "why": "report"},
    ], allow_unicode=True), encoding="utf-8")
    assert net_batches.main([str(batch), "--misses"]) == 0
    out = capsys.readouterr().out
    assert "net_fresh_tiny.yml" in out and "acute 1 + 0 asked of 2 | everyday 0 + 0 asked of 1" in out
    assert "missed - : wo kann ich mein gefundenes fahrrad abgeben" in out
