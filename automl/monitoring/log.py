"""The prediction log: what `automl serve` and `automl predict` answered, row by row.

A request only puts one entry on a queue (its rows, answers, row ids and latency); a background
thread samples the rows, writes them in batches and deletes rows past the retention limit, so the
log costs a request microseconds, not a database round trip. Each answered row has an id: the
value of the spec's ``id_column`` when the row carries one, else a generated one, returned to the
caller so true labels can be joined later (`automl feedback`).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from automl.store.base import Store
from automl.store.records import ModelVersionRecord, NewPredictionLog

LOG = logging.getLogger("automl.prediction_log")
MAX_ROW_ID = 200  # characters (the column's width)
PURGE_EVERY_S = 3600.0
MAX_PENDING_ROWS = 100_000  # rows kept for a retry while the database is away


def _plain(value: Any) -> Any:
    """A JSON-ready value (numpy scalars, NaN and timestamps made plain)."""
    item = getattr(value, "item", None)
    if callable(item):
        value = item()
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def row_ids(records: Sequence[dict[str, Any]], id_column: str | None) -> list[str]:
    """One id per row: its ``id_column`` value when present, else a new random id."""
    ids = []
    for record in records:
        value = record.get(id_column) if id_column else None
        ids.append(str(value)[:MAX_ROW_ID] if _plain(value) not in (None, "") else uuid.uuid4().hex)
    return ids


@dataclass(frozen=True)
class Entry:
    version: ModelVersionRecord
    records: Sequence[dict[str, Any]]
    predictions: Sequence[Any]
    probabilities: Sequence[dict[str, float]] | None
    row_ids: Sequence[str]
    latency_ms: float | None
    source: str
    at: datetime


def entry_rows(entry: Entry, sample_rate: float, rng: random.Random) -> list[NewPredictionLog]:
    schema = [c["name"] for c in entry.version.input_schema]
    rows = []
    for i, record in enumerate(entry.records):
        if sample_rate < 1.0 and rng.random() >= sample_rate:
            continue
        rows.append(
            NewPredictionLog(
                model_name=entry.version.model_name,
                version_id=entry.version.id,
                row_id=entry.row_ids[i],
                source=entry.source,
                created_at=entry.at,
                latency_ms=entry.latency_ms,
                prediction=_plain(entry.predictions[i]),
                probabilities=(
                    {k: _plain(v) for k, v in entry.probabilities[i].items()} if entry.probabilities else None
                ),
                features={name: _plain(record.get(name)) for name in schema},
            )
        )
    return rows


class PredictionLog:
    """Batches answered rows into the store off the request path.

    ``record`` never blocks and never raises: when the queue is full (the database is away for a
    long time) new entries are dropped and counted (``dropped_rows``)."""

    def __init__(
        self,
        store: Callable[[], Store],
        *,
        sample_rate: float = 1.0,
        retention_days: float = 30.0,
        flush_s: float = 0.5,
        max_queue: int = 10_000,
        seed: int | None = None,
    ) -> None:
        self._store = store
        self.sample_rate = sample_rate
        self.retention_days = retention_days
        self.flush_s = flush_s
        self._queue: queue.Queue[Entry] = queue.Queue(maxsize=max_queue)
        self._rng = random.Random(seed)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._pending: list[NewPredictionLog] = []
        self._last_purge = float("-inf")
        self._id_columns: dict[int, str | None] = {}
        self.written_rows = 0
        self.dropped_rows = 0
        self.failed_writes = 0

    @property
    def enabled(self) -> bool:
        return self.sample_rate > 0

    def id_column(self, version: ModelVersionRecord) -> str | None:
        """The spec's id column of the version's job (read once per version)."""
        if version.id not in self._id_columns:
            spec = self._store().get_job(version.job_id).spec
            self._id_columns[version.id] = spec.get("dataset", {}).get("id_column")
        return self._id_columns[version.id]

    def record(self, entry: Entry) -> None:
        if not self.enabled:
            return
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped_rows += len(entry.records)

    def start(self) -> None:
        if self._thread is None and self.enabled:
            self._thread = threading.Thread(target=self._loop, name="prediction-log", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.flush_s)
            self.flush()

    def flush(self) -> int:
        """Write every queued entry now; returns the rows written (0 when the store is away: they
        stay queued and are retried at the next flush)."""
        with self._write_lock:
            while True:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._pending.extend(entry_rows(entry, self.sample_rate, self._rng))
            if not self._pending:
                self._purge()
                return 0
            batch, self._pending = self._pending, []
            try:
                self._store().add_prediction_logs(batch)
            except Exception as exc:  # the database away: keep the rows (up to a bound) and retry
                self.failed_writes += 1
                LOG.warning("prediction log: %d row(s) not written yet: %s", len(batch), exc)
                self._pending = batch + self._pending
                overflow = len(self._pending) - MAX_PENDING_ROWS
                if overflow > 0:  # the oldest go first
                    self._pending = self._pending[overflow:]
                    self.dropped_rows += overflow
                return 0
            self.written_rows += len(batch)
            self._purge()
            return len(batch)

    def _purge(self) -> None:
        if not self.enabled or self.retention_days <= 0 or time.monotonic() - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = time.monotonic()
        try:
            self._store().purge_prediction_logs(datetime.now(UTC) - timedelta(days=self.retention_days))
        except Exception as exc:  # retried at the next purge
            LOG.warning("prediction log: purge failed: %s", exc)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()
