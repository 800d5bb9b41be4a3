"""Load a trained Rasa NLU model once per process and parse messages with it."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from nlu.parse import Parse

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """The model file is missing or cannot be loaded."""


def _quiet_rasa() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("LOG_LEVEL_LIBRARIES", "ERROR")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    for name in ("rasa", "tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)


class NluModel:
    """A loaded model. Parsing runs on one worker thread, so the event loop stays free."""

    def __init__(self, path: Path, processor: object) -> None:
        self.path = path
        self._processor = processor
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlu")
        self.loaded_at = time.time()
        self.mtime = path.stat().st_mtime if path.exists() else 0.0

    @classmethod
    def load(cls, path: Path) -> "NluModel":
        """Load the model at `path` (slow: seconds). Raise ModelError when that fails."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"no NLU model at {path}: run `make train`")
        _quiet_rasa()
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():  # Rasa's and TensorFlow's import-time deprecation notes
                warnings.simplefilter("ignore")
                from rasa.core.processor import MessageProcessor
                from rasa.core.tracker_store import InMemoryTrackerStore
                from rasa.core.lock_store import InMemoryLockStore
                from rasa.shared.core.domain import Domain

            processor = MessageProcessor(
                model_path=path,
                tracker_store=InMemoryTrackerStore(Domain.empty()),
                lock_store=InMemoryLockStore(),
                generator=None,
            )
        except Exception as err:  # Rasa raises many kinds for a broken archive
            raise ModelError(f"cannot load NLU model {path}: {err}") from err
        model = cls(path, processor)
        model.parse_sync("hallo")  # warm up the graph so the first citizen does not wait
        log.info("NLU model %s loaded in %.1f s", path.name, time.perf_counter() - started)
        return model

    def parse_sync(self, text: str) -> Parse:
        """Parse one message on the calling thread."""
        from rasa.core.channels.channel import UserMessage
        from rasa.shared.core.trackers import DialogueStateTracker

        tracker = DialogueStateTracker.from_events("streife", [])
        data = self._processor._parse_message_with_graph(UserMessage(text), tracker, True)
        intent = data.get("intent") or {}
        ranking = tuple(
            (item["name"], float(item["confidence"])) for item in data.get("intent_ranking") or []
        )
        return Parse(intent.get("name") or "nlu_fallback", float(intent.get("confidence") or 0.0), ranking)

    async def parse(self, text: str) -> Parse:
        """Parse one message on the model's worker thread."""
        try:
            future = self._worker.submit(self.parse_sync, text)
        except RuntimeError:  # retired by a reload while this message was on its way: finish it on a spare thread
            return await asyncio.to_thread(self.parse_sync, text)
        return await asyncio.wrap_future(future)

    @property
    def name(self) -> str:
        """The file name, when it was written and Rasa's model id, e.g. nlu.tar.gz@2026-11-21T22:27:03.250Z#1a2b3c4d."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.mtime)) + f".{int(self.mtime * 1000) % 1000:03d}Z"
        model_id = str(getattr(getattr(self._processor, "model_metadata", None), "model_id", ""))[:8]
        return f"{self.path.name}@{stamp}#{model_id}" if model_id else f"{self.path.name}@{stamp}"

    def close(self) -> None:
        """Stop the worker thread."""
        self._worker.shutdown(wait=False)


class ModelHolder:
    """The model currently serving; swapped atomically when a new one was loaded and checked."""

    def __init__(self, model: NluModel | None = None) -> None:
        self._model = model
        self._lock = threading.Lock()
        self.error: str | None = None
        self.rejected: str | None = None  # why the last reloaded model was refused (the old one kept serving)
        self.loading = False

    @property
    def model(self) -> NluModel | None:
        """The serving model, or None (safety-net mode)."""
        return self._model

    @property
    def ready(self) -> bool:
        """A model is serving (triage's Parser protocol)."""
        return self._model is not None

    async def parse(self, text: str, urgent: bool = False) -> Parse | None:
        """Parse with the serving model in this process (the NLU side's tools; the service uses the workers)."""
        model = self._model
        return await model.parse(text) if model is not None else None

    def swap(self, model: NluModel) -> NluModel | None:
        """Put `model` in service and return the one it replaced."""
        with self._lock:
            old, self._model = self._model, model
            self.error = None
        return old

    def load(self, path: Path) -> NluModel | None:
        """Load `path` and put it in service; on failure keep the old model and record why."""
        self.loading = True
        try:
            model = NluModel.load(path)
        except ModelError as err:
            self.error = str(err)
            log.error("%s; the safety net keeps answering emergencies", err)
            return None
        finally:
            self.loading = False
        old = self.swap(model)
        if old is not None:
            old.close()
        return model

    def reload(self, path: Path, check: Callable[[NluModel], None]) -> NluModel:
        """Load `path` beside the serving model, `check` it, then swap; on any failure keep the old one.

        `check` raises ModelError to refuse the model. Messages keep being parsed by the old model
        on its own thread until the swap; the old model finishes what it has and is then retired.
        """
        self.loading = True
        try:
            model = NluModel.load(path)
            try:
                check(model)
            except ModelError:
                model.close()
                raise
        except ModelError as err:
            self.rejected = str(err)
            log.error("model reload refused, the old model keeps serving: %s", err)
            raise
        finally:
            self.loading = False
        old = self.swap(model)
        self.rejected = None
        if old is not None:
            old.close()
        log.info("model reloaded: %s now serving (was %s)", model.name, old.name if old else "none")
        return model
