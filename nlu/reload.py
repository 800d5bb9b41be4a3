"""Reload a newly trained model into a running bot without downtime.

A reload starts on SIGHUP or when the model file changes (its modification time is polled).
The new model loads beside the serving one on a thread, must pass a smoke test (the model
on its own, without the safety net, escalates every emergency and self_harm example it was
trained on, and does not escalate ordinary messages), and is then swapped in atomically.
A model that fails to load or fails the smoke test is refused; the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from nlu.examples import DataError, read_dir
from nlu.intents import ESCALATION_INTENTS
from nlu.model import ModelError, ModelHolder, NluModel

log = logging.getLogger(__name__)

# Used when data/nlu cannot be read: unmistakable emergencies any usable model escalates.
CLEAR_ESCALATIONS = (
    "hilfe einbrecher",
    "da steht einer mit nem messer vor der schule",
    "es brennt bei uns im keller überall rauch im flur",
    "ich will mich umbringen",
    "ich will nicht mehr leben",
)
CLEAR_ORDINARY = ("hallo", "danke euch", "mein fahrrad wurde geklaut", "wo ist die nächste polizeiwache")
MAX_FALSE_ALARMS = 0.05


class SmokeTestError(ModelError):
    """A model that loads but would miss emergencies (or cry wolf); it must not serve."""


@dataclass(frozen=True)
class SmokeSet:
    """Messages a new model must escalate, and ordinary ones it must (mostly) not."""

    escalate: tuple[str, ...]
    ordinary: tuple[str, ...]

    @classmethod
    def from_data(cls, data_dir: Path, ordinary_sample: int = 200) -> "SmokeSet":
        """The trained emergency and self_harm examples, and a spread of the others."""
        try:
            examples = read_dir(data_dir / "nlu")
        except (DataError, OSError) as err:
            log.warning("smoke test uses the built-in examples: %s", err)
            return cls(CLEAR_ESCALATIONS, CLEAR_ORDINARY)
        escalate = tuple(e.text for e in examples if e.intent in ESCALATION_INTENTS)
        others = [e.text for e in examples if e.intent not in ESCALATION_INTENTS]
        step = max(1, len(others) // ordinary_sample)
        if not escalate:
            return cls(CLEAR_ESCALATIONS, CLEAR_ORDINARY)
        return cls(escalate, tuple(others[::step]) or CLEAR_ORDINARY)


def smoke_test(model: NluModel, smoke: SmokeSet, threshold: float) -> None:
    """Raise SmokeTestError unless the model alone escalates every escalation message (and few others)."""
    def escalation(text: str) -> float:
        parse = model.parse_sync(text)
        return max(parse.confidence_of(intent) for intent in ESCALATION_INTENTS)

    missed = [text for text in smoke.escalate if escalation(text) < threshold]
    if missed:
        shown = "; ".join(repr(t) for t in missed[:3])
        raise SmokeTestError(f"{model.path}: does not escalate {len(missed)} of {len(smoke.escalate)} emergency/self_harm examples, e.g. {shown}")
    alarms = [text for text in smoke.ordinary if escalation(text) >= threshold]
    if len(alarms) > MAX_FALSE_ALARMS * len(smoke.ordinary):
        raise SmokeTestError(f"{model.path}: escalates {len(alarms)} of {len(smoke.ordinary)} ordinary examples, e.g. {alarms[0]!r}")


def _stamp(path: Path) -> tuple[float, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime, st.st_size, st.st_ino)


class ModelReloader:
    """Watches the model file and SIGHUP; one reload at a time."""

    def __init__(self, models: ModelHolder, path: Path, data_dir: Path, threshold: float, poll_seconds: float = 5.0) -> None:
        self.models = models
        self.path = Path(path)
        self.data_dir = data_dir
        self.threshold = threshold
        self.poll_seconds = poll_seconds
        self._lock = asyncio.Lock()
        self._seen = _stamp(self.path)  # the file version last loaded or tried
        self._tasks: set[asyncio.Task[object]] = set()
        self._signal = False

    async def reload(self, reason: str = "request") -> bool:
        """Load, check and swap in the model file; False when it was refused."""
        async with self._lock:
            self._seen = _stamp(self.path)
            log.info("reloading the NLU model (%s): %s", reason, self.path)
            smoke = SmokeSet.from_data(self.data_dir)
            try:
                await asyncio.to_thread(self.models.reload, self.path, lambda m: smoke_test(m, smoke, self.threshold))
            except ModelError:
                return False  # ModelHolder logged why
            return True

    def request(self, reason: str = "SIGHUP") -> None:
        """Start a reload in the background (for a signal handler)."""
        task = asyncio.get_running_loop().create_task(self.reload(reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def watch(self) -> None:
        """Reload whenever the model file is replaced (e.g. by `make train`)."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            stamp = _stamp(self.path)
            if stamp is not None and stamp != self._seen and not self._lock.locked():
                await self.reload("model file changed")

    def start(self, watch: bool = True, on_signal: bool = True) -> None:
        """Watch the file and listen for SIGHUP (where the platform has it)."""
        loop = asyncio.get_running_loop()
        if watch and self.poll_seconds > 0:
            task = loop.create_task(self.watch())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if on_signal and hasattr(signal, "SIGHUP"):
            try:
                loop.add_signal_handler(signal.SIGHUP, self.request)
                self._signal = True
                log.info("reload the NLU model with: kill -HUP %d (or replace %s)", os.getpid(), self.path)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread
                log.warning("no SIGHUP reload in this process; the file watch still works")

    async def stop(self) -> None:
        """Stop watching; a reload in progress is cancelled (the old model keeps serving)."""
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
