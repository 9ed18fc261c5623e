"""The model runtime of the server: loaded models by version id, and hot swap.

Loaded models are kept by version id (:class:`ModelCache`, a small LRU; versions that an alias
currently points at are never evicted). Each ``NAME@ALIAS`` the server has answered for is
*tracked*: a background thread reads every alias from the store each ``alias_poll_s`` seconds (one
query), and when one has moved it loads the new version first and only then switches the alias to
it. A request in flight keeps the model object it started with, so nothing fails while an alias
moves, whichever process moved it. A version that cannot be loaded (artifact missing or corrupt) is
not switched to: the previous one keeps serving and ``/readyz`` answers 503 naming the version and
the path, until the alias moves again or the artifact is restored (a failed version is retried as
soon as its file changes, else every ``retry_s`` seconds). No HTTP here: :mod:`automl.serving.app`
is the shell over it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from automl import registry
from automl.artifacts import ArtifactStore
from automl.errors import AutomlError
from automl.predict import load_version, single_threaded, version_label
from automl.store.base import Store
from automl.store.records import ModelVersionRecord

log = logging.getLogger("automl.serving")


@dataclass(frozen=True)
class Served:
    """A loaded version: its record and its estimator."""

    version: ModelVersionRecord
    model: Any


@dataclass(frozen=True)
class SwapError:
    """Why ``model@alias`` could not switch to the version it now points at."""

    model: str
    alias: str
    version_id: int
    code: str
    message: str
    hint: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"component": "model", **asdict(self)}


def _load_failed(version: ModelVersionRecord, exc: Exception) -> AutomlError:
    """A model that passed its checksum but does not unpickle (a library missing or too old here)."""
    return AutomlError(
        f"{version_label(version)} cannot be loaded: {type(exc).__name__}: {exc}",
        hint="serve it from an environment with the libraries it was trained with (see its job's environment)",
        code="MODEL_LOAD_FAILED",
    )


class ModelCache:
    """Loaded versions by id (LRU of ``capacity``, pinned while an alias uses them) and the version
    each tracked alias is served from. Thread-safe; :meth:`refresh` does the hot swap."""

    def __init__(
        self, store: Callable[[], Store], artifacts: ArtifactStore, *, capacity: int = 4, retry_s: float = 5.0
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._capacity = capacity
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._models: OrderedDict[int, Served] = OrderedDict()
        self._loading: dict[int, threading.Lock] = {}
        self._failed: dict[int, tuple[float, tuple[int, int] | None, AutomlError]] = {}
        self._aliases: dict[tuple[str, str], int] = {}
        self._numbers: dict[tuple[str, int], int] = {}
        self._errors: dict[tuple[str, str], SwapError] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def _cached(self, version_id: int | None) -> Served | None:
        with self._lock:
            served = self._models.get(version_id) if version_id is not None else None
            if served is not None:
                self._models.move_to_end(served.version.id)
            return served

    def _signature(self, version: ModelVersionRecord) -> tuple[int, int] | None:
        """The artifact file's (mtime, size): a version that failed to load is retried at once when
        its file changes (restored), else at most every ``retry_s`` seconds."""
        try:
            stat = self._artifacts.path(version.artifact_uri).stat()
        except (OSError, ValueError):
            return None
        return stat.st_mtime_ns, stat.st_size

    def _load(self, version: ModelVersionRecord) -> Served:
        """The loaded version, loading it once however many threads ask at the same time."""
        if (hit := self._cached(version.id)) is not None:
            return hit
        with self._lock:
            gate = self._loading.setdefault(version.id, threading.Lock())
        with gate:
            if (hit := self._cached(version.id)) is not None:
                return hit
            failed, signature = self._failed.get(version.id), self._signature(version)
            if failed is not None and failed[1] == signature and time.monotonic() - failed[0] < self._retry_s:
                raise type(failed[2])(failed[2].message, hint=failed[2].hint)
            try:
                served = Served(version, single_threaded(load_version(self._artifacts, version)))
            except Exception as exc:
                error = exc if isinstance(exc, AutomlError) else _load_failed(version, exc)
                self._failed[version.id] = (time.monotonic(), signature, error)
                raise error from None
            with self._lock:
                self._failed.pop(version.id, None)
                self._models[version.id] = served
                self._loading.pop(version.id, None)
                pinned = set(self._aliases.values()) | {version.id}
                for vid in [v for v in self._models if v not in pinned][: max(0, len(self._models) - self._capacity)]:
                    del self._models[vid]
            log.info("loaded %s v%s (version id %s)", version.model_name, version.version, version.id)
            return served

    def by_alias(self, name: str, alias: str) -> Served:
        """The version ``name@alias`` is served from; the first request resolves it and starts tracking it."""
        registry.check_alias(alias)
        with self._lock:
            current = self._aliases.get((name, alias))
        if (hit := self._cached(current)) is not None:
            return hit
        served = self._load(registry.resolve(self._store(), registry.ModelRef(name, alias)))
        with self._lock:
            self._aliases.setdefault((name, alias), served.version.id)
        return served

    def by_number(self, name: str, number: int) -> Served:
        """Version ``number`` of ``name`` (versions never change, so the lookup is remembered)."""
        with self._lock:
            known = self._numbers.get((name, number))
        if (hit := self._cached(known)) is not None:
            return hit
        served = self._load(registry.resolve(self._store(), registry.ModelRef(name, version=number)))
        with self._lock:
            self._numbers[(name, number)] = served.version.id
        return served

    def refresh(self) -> None:
        """Re-read every alias once; switch each tracked alias that moved, after loading its version."""
        with self._lock:
            tracked = dict(self._aliases)
        if not tracked:
            return
        pointers = {(a.model_name, a.alias): a.version_id for a in self._store().list_aliases()}
        for key, current in tracked.items():
            target = pointers.get(key)
            if target is None or target == current:
                if target == current:
                    with self._lock:
                        self._errors.pop(key, None)
                continue  # an alias that disappeared keeps serving what it had
            try:
                self._load(self._store().get_model_version(target))
            except AutomlError as exc:
                error = SwapError(key[0], key[1], target, exc.code, exc.message, exc.hint)
                with self._lock:
                    if self._errors.get(key) != error:
                        log.error("%s@%s stays on version id %s: %s", *key, current, exc)
                    self._errors[key] = error
                continue
            with self._lock:
                self._aliases[key] = target
                self._errors.pop(key, None)
            log.info("%s@%s now served from version id %s (was %s)", *key, target, current)

    def status(self) -> dict[str, Any]:
        """What each tracked alias is served from, and the swaps that failed."""
        with self._lock:
            aliases = dict(self._aliases)
            versions = {vid: s.version.version for vid, s in self._models.items()}
            errors = [e.to_dict() for e in self._errors.values()]
        serving = [
            {"model": n, "alias": a, "version": versions.get(vid), "version_id": vid}
            for (n, a), vid in sorted(aliases.items())
        ]
        return {"serving": serving, "errors": errors}

    def start_polling(self, interval_s: float) -> None:
        """Run :meth:`refresh` every ``interval_s`` seconds in a daemon thread."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.refresh()
                except Exception as exc:  # the store is down: keep serving, /readyz says why
                    log.warning("alias refresh failed: %s", exc)
                self._wake.wait(interval_s)
                self._wake.clear()

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="automl-alias-poller", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Refresh now rather than at the next tick (after this process moved an alias)."""
        self._wake.set()

    def stop_polling(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class LazyStore:
    """The store, opened on first use so the server starts (and /healthz answers) with the DB down."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._store: Store | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from automl.store import open_store

                    self._store = open_store(self._url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
