"""The prediction log on SQLite and PostgreSQL: rows written off the request path in batches,
sampled, purged past retention, kept and retried while the database is away; labels joined by row
id; monitor runs and references stored by the contract."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from automl.errors import NotFound, StoreUnavailable
from automl.monitoring.log import Entry, PredictionLog, entry_rows, row_ids
from automl.store.records import ModelVersionRecord, NewMonitorFeature, NewMonitorRun
from tests.store.test_contract import create_job, new_version


def _version(store: Any) -> ModelVersionRecord:
    job = create_job(store, model_name="clf")
    version: ModelVersionRecord = store.create_model_version(new_version(job.id, model_name="clf"))
    return version


def _entry(version: ModelVersionRecord, n: int, *, at: datetime | None = None, start: int = 0) -> Entry:
    records = [{"a": float(i), "extra": "ignored"} for i in range(start, start + n)]
    return Entry(
        version=version,
        records=records,
        predictions=["x" if i % 2 else "y" for i in range(n)],
        probabilities=[{"x": 0.25, "y": 0.75} for _ in range(n)],
        row_ids=[f"r{start + i}" for i in range(n)],
        latency_ms=3.5,
        source="serve",
        at=at or datetime.now(UTC),
    )


def test_rows_are_written_in_one_batch_with_what_was_answered(store: Any) -> None:
    version = _version(store)
    log = PredictionLog(lambda: store)
    log.record(_entry(version, 3))
    log.record(_entry(version, 2, start=3))
    assert store.list_prediction_logs("clf") == []  # nothing on the request path
    assert log.flush() == 5
    rows = store.list_prediction_logs("clf")
    assert [r.row_id for r in rows] == ["r0", "r1", "r2", "r3", "r4"]
    first = rows[0]
    assert (first.version_id, first.source, first.latency_ms) == (version.id, "serve", 3.5)
    assert first.features == {"a": 0.0}  # the schema's columns only
    assert (first.prediction, first.probabilities, first.label) == ("y", {"x": 0.25, "y": 0.75}, None)
    assert [r.row_id for r in store.list_prediction_logs("clf", limit=2)] == ["r3", "r4"]
    assert store.list_prediction_logs("other") == []


def test_sampling_keeps_about_the_rate(store: Any) -> None:
    version = _version(store)
    kept = entry_rows(_entry(version, 10_000), 0.1, random.Random(0))
    assert 900 <= len(kept) <= 1100
    assert entry_rows(_entry(version, 10, start=0), 1.0, random.Random(0))[0].row_id == "r0"


def test_labels_join_by_row_id_and_windows_select_rows(store: Any) -> None:
    version = _version(store)
    log = PredictionLog(lambda: store)
    log.record(_entry(version, 4, at=datetime.now(UTC) - timedelta(days=3)))
    log.record(_entry(version, 4, start=4))
    log.flush()
    assert store.set_labels("clf", {"r1": "x", "r5": "y", "nope": "x"}) == 2
    labelled = {r.row_id: r.label for r in store.list_prediction_logs("clf") if r.label is not None}
    assert labelled == {"r1": "x", "r5": "y"}
    recent = store.list_prediction_logs("clf", since=datetime.now(UTC) - timedelta(days=1))
    assert [r.row_id for r in recent] == ["r4", "r5", "r6", "r7"]
    assert store.list_prediction_logs("clf", version_id=version.id + 1000) == []


def test_retention_purges_old_rows(store: Any) -> None:
    version = _version(store)
    log = PredictionLog(lambda: store, retention_days=2)
    log.record(_entry(version, 3, at=datetime.now(UTC) - timedelta(days=5)))
    log.record(_entry(version, 2, start=3))
    log.flush()  # the first flush also purges (then at most hourly)
    assert [r.row_id for r in store.list_prediction_logs("clf")] == ["r3", "r4"]
    log.record(_entry(version, 1, at=datetime.now(UTC) - timedelta(days=5), start=5))
    log.flush()  # within the hour: not purged by the log...
    assert len(store.list_prediction_logs("clf")) == 3
    assert store.purge_prediction_logs(datetime.now(UTC) - timedelta(days=2)) == 1  # ...but by the store


def test_rows_wait_while_the_database_is_away_and_are_written_after(store: Any) -> None:
    version = _version(store)
    away = {"now": True}

    def flaky() -> Any:
        if away["now"]:
            raise StoreUnavailable("the database is away")
        return store

    log = PredictionLog(flaky)
    log.record(_entry(version, 3))
    assert log.flush() == 0 and log.failed_writes == 1
    log.record(_entry(version, 2, start=3))
    away["now"] = False
    assert log.flush() == 5
    assert [r.row_id for r in store.list_prediction_logs("clf")] == ["r0", "r1", "r2", "r3", "r4"]


def test_a_full_queue_drops_and_counts_instead_of_blocking(store: Any) -> None:
    version = _version(store)
    log = PredictionLog(lambda: store, max_queue=2)
    for i in range(4):
        log.record(_entry(version, 3, start=3 * i))
    assert log.dropped_rows == 6
    assert log.flush() == 6


def test_the_background_thread_writes_and_close_flushes(store: Any) -> None:
    version = _version(store)
    log = PredictionLog(lambda: store, flush_s=0.05)
    log.start()
    log.record(_entry(version, 2))
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while len(store.list_prediction_logs("clf")) < 2 and datetime.now(UTC) < deadline:
        log._stop.wait(0.05)
    assert len(store.list_prediction_logs("clf")) == 2
    log.record(_entry(version, 1, start=2))
    log.close()
    assert len(store.list_prediction_logs("clf")) == 3


def test_row_ids_come_from_the_id_column_or_are_generated() -> None:
    ids = row_ids([{"pid": 7}, {"pid": None}, {"other": 1}, {"pid": "x" * 500}], "pid")
    assert ids[0] == "7" and len(ids[1]) == 32 and len(ids[2]) == 32 and ids[1] != ids[2]
    assert ids[3] == "x" * 200
    assert all(len(i) == 32 for i in row_ids([{}, {}], None))


def test_monitor_runs_and_references_in_the_store(store: Any) -> None:
    version = _version(store)
    assert store.get_reference(version.id) is None
    first = store.put_reference(version.id, {"features": {"a": {"kind": "numeric"}}}, None, None)
    again = store.put_reference(version.id, {"features": {}}, "models/x/outliers.joblib", "ab" * 32)
    assert first.version_id == again.version_id == version.id
    assert store.get_reference(version.id).reference == {"features": {}}
    with pytest.raises(NotFound):
        store.put_reference(version.id + 1000, {}, None, None)

    new = NewMonitorRun(
        model_name="clf", version_id=version.id, source="input", source_detail="new.csv", rows=10, features=1,
        drifted_features=1, drift_share=0.5, dataset_drift=True, prediction_drift=False, anomaly_rows=2,
        outlier_rows=1, live_metric="roc_auc", live_value=0.9, live_rows=10, holdout_value=0.95,
        details={"anomalies": []}, actor="tester",
    )  # fmt: skip
    feature = NewMonitorFeature(
        feature="a", kind="numeric", method="ks", statistic=0.01, threshold=0.05, drifted=True, psi=0.3, rows=10
    )
    run = store.add_monitor_run(new, [feature])
    assert store.list_monitor_runs("clf")[0].id == run.id and store.list_monitor_runs("other") == []
    assert store.monitor_features(run.id) == [feature]
    with pytest.raises(NotFound):
        store.monitor_features(run.id + 1000)
    health = store.model_health("clf")
    assert len(health) == 1 and health[0].dataset_drift is True and health[0].in_production is False
    store.move_alias("clf", "production", version.id, actor="tester")
    assert store.model_health()[0].in_production is True
