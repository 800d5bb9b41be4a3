"""Rasa's own stack for comparison: the same NLU pipeline and data, a minimal rules domain, `rasa run`.

The project is generated into bench/out/rasa_stack/ (git-ignored) from data/nlu and config.yml:
one `utter_<intent>` response per intent, one rule per intent mapping it to that response, the
pipeline of config.yml plus a RulePolicy, and the REST channel (credentials.yml). It is trained
with `rasa train` once and retrained only when the pipeline or the data change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from nlu.intents import INTENTS
from tests.fake_bot_api import free_port  # noqa: F401  (re-exported for the benchmarks)

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
OUT = ROOT / "bench" / "out" / "rasa_stack"
RASA = Path(__file__).resolve().parents[2] / ".venv-nlu" / "bin" / "rasa"  # Rasa lives in the NLU environment
FALLBACK = "nlu_fallback"


class RasaStackError(RuntimeError):
    """Rasa's server could not be trained or started."""


def rasa_env() -> dict[str, str]:
    """Rasa quiet and offline: no telemetry, warnings only."""
    path = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)  # config.yml's nlu.classifier
    return dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="2",
                LOG_LEVEL_LIBRARIES="ERROR", SQLALCHEMY_SILENCE_UBER_WARNING="1", PYTHONPATH=path)


def _inputs_hash() -> str:
    digest = hashlib.sha256()
    for path in [ROOT / "config.yml", ROOT / "nlu" / "classifier.py", HERE / "__init__.py",
                 *sorted((ROOT / "data" / "nlu").glob("*.yml"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def write_project(out: Path = OUT) -> Path:
    """Write config, domain, rules, NLU data and credentials of Rasa's project into `out`."""
    (out / "data").mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    config["policies"] = [{"name": "RulePolicy"}]
    (out / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    intents = [*INTENTS, FALLBACK]
    domain = {
        "version": "3.1",
        "intents": list(INTENTS),
        "responses": {f"utter_{i}": [{"text": f"Antwort zum Thema {i}."}] for i in intents},
        "session_config": {"session_expiration_time": 60, "carry_over_slots_to_new_session": True},
    }
    (out / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True, sort_keys=False), encoding="utf-8")
    rules = {"version": "3.1", "rules": [
        {"rule": f"answer {i}", "steps": [{"intent": i}, {"action": f"utter_{i}"}]} for i in intents
    ]}
    (out / "data" / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    for path in (ROOT / "data" / "nlu").glob("*.yml"):
        shutil.copyfile(path, out / "data" / f"nlu_{path.name}")
    shutil.copyfile(HERE / "credentials.yml", out / "credentials.yml")
    (out / "endpoints.yml").write_text("# no action server, in-memory tracker and lock store\n", encoding="utf-8")
    return out


def trained_model(out: Path = OUT, quiet: bool = True) -> Path:
    """Train Rasa's model with `rasa train` unless one for the current data and pipeline exists."""
    model = out / "models" / f"rasa-stack-{_inputs_hash()}.tar.gz"
    if model.is_file():
        return model
    write_project(out)
    started = time.perf_counter()
    result = subprocess.run(
        [str(RASA), "train", "--fixed-model-name", model.name.removesuffix(".tar.gz"), "--out", "models",
         "--config", "config.yml", "--domain", "domain.yml", "--data", "data"],
        cwd=out, env=rasa_env(), stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT, timeout=1800,
    )
    if result.returncode != 0 or not model.is_file():
        tail = (result.stdout or b"").decode(errors="replace")[-2000:]
        raise RasaStackError(f"`rasa train` failed ({result.returncode}):\n{tail}")
    print(f"trained Rasa's stack in {time.perf_counter() - started:.0f} s: {model}", file=sys.stderr)
    for stale in model.parent.glob("rasa-stack-*.tar.gz"):  # models of older data or pipelines
        if stale != model:
            stale.unlink()
    return model



def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Poll `url` until it answers 200; return the seconds waited. Raise when the process died or time ran out."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RasaStackError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    raise RasaStackError(f"{url} did not answer within {timeout:.0f} s")


def start_rasa(model: Path, port: int, log_file: Path | None = None) -> subprocess.Popen:
    """Start `rasa run --enable-api` with the REST channel on 127.0.0.1:`port` and wait until it serves."""
    out = model.parent.parent
    log = open(log_file or out / "rasa_run.log", "wb")
    proc = subprocess.Popen(
        [str(RASA), "run", "--enable-api", "--model", str(model), "--credentials", "credentials.yml",
         "--endpoints", "endpoints.yml", "--interface", "127.0.0.1", "--port", str(port)],
        cwd=out, env=rasa_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/status", proc, timeout=300)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return proc
