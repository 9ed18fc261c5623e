"""The store contract, run on every backend (SQLite and PostgreSQL) through the ``store`` fixture."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from automl.errors import NotFound, StoreConflict
from automl.store import open_store
from automl.store.records import (
    DatasetRecord,
    JobRecord,
    ModelVersionRecord,
    NewDataset,
    NewJob,
    NewMetric,
    NewModelVersion,
    RunResult,
)
from automl.store.sql import SqlStore

_counter = itertools.count(1)


# -- factories ------------------------------------------------------------------------------------


def new_dataset(fingerprint: str | None = None, name: str = "iris") -> NewDataset:
    fingerprint = fingerprint or f"{next(_counter):064x}"
    return NewDataset(
        name=name,
        fingerprint=fingerprint,
        format="csv",
        source_path=f"/data/{name}.csv",
        stored_uri=f"file:///store/datasets/{fingerprint}.parquet",
        size_bytes=4551,
        n_rows=150,
        n_columns=5,
        profile={"columns": ["a", "b", "c", "d", "target"]},
    )


def add_dataset(store: SqlStore, name: str = "iris") -> DatasetRecord:
    record, created = store.add_dataset(new_dataset(name=name))
    assert created
    return record


def new_job(dataset_id: int, *, model_name: str = "iris-clf", greater_is_better: bool = True) -> NewJob:
    return NewJob(
        name="iris job",
        spec={"target": "target", "metric": "roc_auc"},
        spec_hash=f"{next(_counter):064x}",
        dataset_id=dataset_id,
        task="multiclass",
        metric="roc_auc" if greater_is_better else "log_loss",
        greater_is_better=greater_is_better,
        model_name=model_name,
        seed=42,
        submitted_by="tester",
        time_budget_s=60.0,
        trial_budget=20,
    )


def create_job(store: SqlStore, *, model_name: str = "iris-clf", greater_is_better: bool = True) -> JobRecord:
    dataset = add_dataset(store)
    return store.create_job(new_job(dataset.id, model_name=model_name, greater_is_better=greater_is_better))


def new_version(job_id: int, *, model_name: str = "iris-clf", run_id: int | None = None) -> NewModelVersion:
    return NewModelVersion(
        model_name=model_name,
        job_id=job_id,
        run_id=run_id,
        task="multiclass",
        metric="roc_auc",
        cv_score=0.97,
        holdout_score=0.95,
        artifact_uri=f"file:///store/models/{model_name}/{job_id}",
        artifact_sha256="ab" * 32,
        input_schema=[{"name": "a", "dtype": "float64"}],
    )


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.tzinfo is not None and value.utcoffset() == timedelta(0)


# -- datasets -------------------------------------------------------------------------------------


def test_add_dataset_once_per_fingerprint(store: SqlStore) -> None:
    new = new_dataset()
    first, created = store.add_dataset(new)
    assert created
    assert first.fingerprint == new.fingerprint and first.profile == new.profile
    assert is_utc(first.created_at)

    again, created_again = store.add_dataset(dataclasses.replace(new, name="renamed"))
    assert not created_again
    assert again == first
    assert len(store.list_datasets()) == 1


def test_get_list_find_datasets(store: SqlStore) -> None:
    a = add_dataset(store, "a")
    b = add_dataset(store, "b")
    assert store.get_dataset(a.id) == a
    assert store.find_dataset(b.fingerprint) == b
    assert store.find_dataset("f" * 64) is None
    assert [d.id for d in store.list_datasets()] == [a.id, b.id]
    assert is_utc(store.get_dataset(a.id).created_at)


def test_missing_ids_raise_not_found(store: SqlStore) -> None:
    lookups: list[Callable[[], object]] = [
        lambda: store.get_dataset(999_999),
        lambda: store.get_job(999_999),
        lambda: store.get_run(999_999),
        lambda: store.get_model_version(999_999),
        lambda: store.find_model_version("nobody", 1),
        lambda: store.update_job(999_999, study_name="s"),
        lambda: store.finish_job(999_999, "failed"),
        lambda: store.finish_run(999_999, RunResult(status="failed")),
    ]
    for lookup in lookups:
        with pytest.raises(NotFound) as info:
            lookup()
        assert info.value.code == "NOT_FOUND"


# -- jobs -----------------------------------------------------------------------------------------


def test_create_and_claim_job(store: SqlStore) -> None:
    job = create_job(store)
    assert job.status == "queued"
    assert job.started_at is None and job.finished_at is None and not job.done
    assert is_utc(job.created_at)
    assert store.get_job(job.id) == job

    assert store.claim_job(job.id) is True
    assert store.claim_job(job.id) is False
    claimed = store.get_job(job.id)
    assert claimed.status == "running"
    assert is_utc(claimed.started_at)
    assert store.claim_job(999_999) is False


def test_trial_slots_are_counted_against_the_cap_and_can_be_given_back(store: SqlStore) -> None:
    job = create_job(store)
    assert store.claim_trial_slot(job.id, 2) is False  # a queued job runs no trials
    store.claim_job(job.id)
    assert store.claim_trial_slot(job.id, 2) is True
    assert store.claim_trial_slot(job.id, 2) is True
    assert store.claim_trial_slot(job.id, 2) is False
    assert store.job_counters(job.id).trials_started == 2
    store.release_trial_slot(job.id)  # a slot claimed for a trial that never ran
    assert store.claim_trial_slot(job.id, 2) is True
    assert store.claim_trial_slot(job.id, None) is True  # no cap
    counters = store.job_counters(job.id)
    assert (counters.status, counters.cancel_requested, counters.trials_started) == ("running", False, 3)
    assert store.reset_trial_slots(job.id, observed=2, started=1) is False  # it moved: left alone
    assert store.job_counters(job.id).trials_started == 3
    assert store.reset_trial_slots(job.id, observed=3, started=2) is True  # one slot lost: given back
    assert store.job_counters(job.id).trials_started == 2
    store.request_cancel(job.id)
    assert store.job_counters(job.id).cancel_requested is True
    with pytest.raises(NotFound):
        store.job_counters(999_999)


def test_concurrent_summary_merges_keep_every_key(store: SqlStore, db_url: str) -> None:
    """Eight processes' worth of connections merge their own keys into one job's summary at once:
    none is lost (the merge is one locked read-modify-write, not read, merge, write)."""
    job = create_job(store)
    store.merge_job_summary(job.id, {"first": 1})
    writers, rounds = 8, 10
    stores = [open_store(db_url) for _ in range(writers)]
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            barrier.wait()
            for step in range(rounds):
                stores[index].merge_job_summary(job.id, {f"w{index}-{step}": step, "last": index})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in stores:
        other.close()
    assert not errors, errors
    summary = store.get_job(job.id).summary or {}
    assert summary["first"] == 1
    assert {f"w{i}-{s}" for i in range(writers) for s in range(rounds)} <= set(summary)
    assert summary["last"] in range(writers)
    with pytest.raises(NotFound):
        store.merge_job_summary(999_999, {"x": 1})


def test_not_found_hints_name_commands_that_exist(store: SqlStore) -> None:
    import re

    from typer.testing import CliRunner

    from automl.cli import app

    lookups: list[Callable[[], object]] = [
        lambda: store.get_job(999_999),
        lambda: store.get_run(999_999),
        lambda: store.get_dataset(999_999),
        lambda: store.get_model_version(999_999),
    ]
    for lookup in lookups:
        with pytest.raises(NotFound) as info:
            lookup()
        commands = re.findall(r"`automl ([^`]+)`", info.value.hint or "")
        assert commands, info.value.hint
        for command in commands:
            words = [w for w in command.split() if not w.isupper()]  # JOB_ID, NAME: placeholders
            result = CliRunner().invoke(app, [*words, "--help"])
            assert result.exit_code == 0, (command, result.output)


def test_update_job_fields(store: SqlStore) -> None:
    job = create_job(store)
    updated = store.update_job(
        job.id,
        selection=["lightgbm", "logistic"],
        profile={"rows": 150},
        environment={"python": "3.12"},
        study_name="automl-job-1",
        time_budget_s=90.0,
    )
    assert updated.selection == ["lightgbm", "logistic"]
    assert updated.profile == {"rows": 150}
    assert updated.environment == {"python": "3.12"}
    assert updated.study_name == "automl-job-1"
    assert updated.time_budget_s == 90.0
    assert store.get_job(job.id) == updated
    # A field not given is left as it is; the summary has its own (atomic) merge.
    again = store.update_job(job.id, profile={"rows": 151})
    assert again.profile == {"rows": 151} and again.selection == ["lightgbm", "logistic"]
    merged = store.merge_job_summary(job.id, {"best": 0.97})
    assert merged.summary == {"best": 0.97} and merged.profile == {"rows": 151}

    with pytest.raises(TypeError):
        store.update_job(job.id, status="succeeded")  # type: ignore[call-arg]
    assert store.get_job(job.id).status == "queued"


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_finish_job(store: SqlStore, status: str) -> None:
    job = create_job(store)
    assert store.claim_job(job.id)
    before = datetime.now(UTC)
    code, message = ("BUDGET_EXHAUSTED", "out of time") if status == "failed" else (None, None)
    finished = store.finish_job(job.id, status, error_code=code, error_message=message)
    assert finished.status == status and finished.done
    assert (finished.error_code, finished.error_message) == (code, message)

    stored = store.get_job(job.id)
    assert stored.status == status
    assert stored.finished_at is not None and stored.started_at is not None
    assert is_utc(stored.finished_at) and is_utc(stored.started_at) and is_utc(stored.created_at)
    assert stored.created_at <= stored.started_at <= stored.finished_at
    assert before - timedelta(seconds=5) <= stored.finished_at <= datetime.now(UTC) + timedelta(seconds=5)


def test_finish_job_refuses_unfinished_status(store: SqlStore) -> None:
    job = create_job(store)
    with pytest.raises(ValueError):
        store.finish_job(job.id, "running")


def test_create_job_refuses_unknown_status(store: SqlStore) -> None:
    dataset = add_dataset(store)
    with pytest.raises(ValueError):
        store.create_job(dataclasses.replace(new_job(dataset.id), status="paused"))


def test_list_jobs_by_status(store: SqlStore) -> None:
    a, b, c = (create_job(store) for _ in range(3))
    store.claim_job(b.id)
    store.claim_job(c.id)
    store.finish_job(c.id, "succeeded")

    assert [j.id for j in store.list_jobs()] == [c.id, b.id, a.id]  # newest first
    assert [j.id for j in store.list_jobs(status="queued")] == [a.id]
    assert [j.id for j in store.list_jobs(status="running")] == [b.id]
    assert [j.id for j in store.list_jobs(status="succeeded")] == [c.id]
    assert store.list_jobs(status="cancelled") == []
    assert len(store.list_jobs(limit=2)) == 2


def test_job_status_check_constraint(store: SqlStore) -> None:
    job = create_job(store)
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'paused' WHERE id = :id"), {"id": job.id})
    assert store.get_job(job.id).status == "queued"


# -- runs -----------------------------------------------------------------------------------------


def test_start_and_finish_runs(store: SqlStore) -> None:
    job = create_job(store)
    first = store.start_run(job.id, "trial", "lightgbm", {"num_leaves": 31}, trial_number=0, worker="w1")
    assert first.status == "running" and first.finished_at is None and first.cv_score is None
    assert first.params == {"num_leaves": 31} and first.worker == "w1"
    assert is_utc(first.started_at)

    second = store.start_run(job.id, "trial", "logistic", {"C": 1.0}, trial_number=1)
    ensemble = store.start_run(job.id, "ensemble", "ensemble", {})

    done = store.finish_run(
        first.id,
        RunResult(status="succeeded", cv_score=0.91, cv_std=0.02, fold_scores=[0.9, 0.92], fit_seconds=1.5),
    )
    assert done.status == "succeeded" and done.cv_score == 0.91 and done.fold_scores == [0.9, 0.92]
    assert is_utc(done.finished_at)
    store.set_run_holdout(first.id, 0.89)
    assert store.get_run(first.id).holdout_score == 0.89

    failed = store.finish_run(
        second.id, RunResult(status="failed", error_code="TRIAL_FAILED", error_message="diverged")
    )
    assert (failed.status, failed.error_code, failed.error_message) == ("failed", "TRIAL_FAILED", "diverged")
    store.finish_run(ensemble.id, RunResult(status="succeeded", cv_score=0.93, members=[[first.id, 1.0]]))

    runs = store.list_runs(job.id)
    assert [r.id for r in runs] == [first.id, second.id, ensemble.id]
    assert runs[2].members == [[first.id, 1.0]]
    assert runs[0] == store.get_run(first.id)
    assert store.list_runs(create_job(store).id) == []


def test_duplicate_trial_run_refused(store: SqlStore) -> None:
    job = create_job(store)
    store.start_run(job.id, "trial", "lightgbm", {}, trial_number=3)
    with pytest.raises(StoreConflict) as info:
        store.start_run(job.id, "trial", "lightgbm", {}, trial_number=3)
    assert info.value.code == "STORE_CONFLICT"

    # Another kind, another job, or no trial number at all: all allowed.
    store.start_run(job.id, "refit", "lightgbm", {}, trial_number=3)
    store.start_run(create_job(store).id, "trial", "lightgbm", {}, trial_number=3)
    for _ in range(3):
        store.start_run(job.id, "ensemble", "ensemble", {}, trial_number=None)
    assert len(store.list_runs(job.id)) == 5


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_by_run_and_by_version(store: SqlStore) -> None:
    job = create_job(store)
    run = store.start_run(job.id, "trial", "lightgbm", {}, trial_number=0)
    other = store.start_run(job.id, "trial", "lightgbm", {}, trial_number=1)
    version = store.create_model_version(new_version(job.id, run_id=run.id))
    store.add_metrics(
        [
            NewMetric(name="roc_auc", value=0.9, split="fold", run_id=run.id, step=0),
            NewMetric(name="roc_auc", value=0.92, split="fold", run_id=run.id, step=1),
            NewMetric(name="roc_auc", value=0.5, split="cv", run_id=other.id),
            NewMetric(name="roc_auc", value=0.95, split="holdout", model_version_id=version.id),
        ]
    )
    by_run = store.list_metrics(run_id=run.id)
    assert [(m.value, m.step, m.split) for m in by_run] == [(0.9, 0, "fold"), (0.92, 1, "fold")]
    assert all(m.model_version_id is None for m in by_run)
    by_version = store.list_metrics(model_version_id=version.id)
    assert [(m.name, m.value, m.split, m.run_id) for m in by_version] == [("roc_auc", 0.95, "holdout", None)]
    assert len(store.list_metrics()) == 4


@pytest.mark.parametrize("owners", ["neither", "both"])
def test_metric_needs_exactly_one_owner(store: SqlStore, owners: str) -> None:
    job = create_job(store)
    run = store.start_run(job.id, "trial", "lightgbm", {}, trial_number=0)
    version = store.create_model_version(new_version(job.id, run_id=run.id))
    owner: dict[str, Any] = {"run_id": run.id, "model_version_id": version.id} if owners == "both" else {}
    with pytest.raises(StoreConflict):
        store.add_metrics([NewMetric(name="roc_auc", value=0.9, split="cv", **owner)])
    assert store.list_metrics() == []


# -- model versions -------------------------------------------------------------------------------


def test_version_numbers_per_model_name(store: SqlStore) -> None:
    numbers: dict[str, list[int]] = {"a": [], "b": []}
    for name in ["a", "a", "b", "a", "b"]:
        job = create_job(store, model_name=name)
        numbers[name].append(store.create_model_version(new_version(job.id, model_name=name)).version)
    assert numbers == {"a": [1, 2, 3], "b": [1, 2]}


def test_second_version_for_job_refused_without_consuming_number(store: SqlStore) -> None:
    job = create_job(store)
    first = store.create_model_version(new_version(job.id))
    assert first.version == 1 and is_utc(first.created_at)
    with pytest.raises(StoreConflict) as info:
        store.create_model_version(new_version(job.id))
    assert info.value.code == "STORE_CONFLICT"
    with pytest.raises(StoreConflict):
        store.create_model_version(new_version(job.id, model_name="other"))

    second = store.create_model_version(new_version(create_job(store).id))
    assert second.version == 2
    assert store.list_model_versions("other") == []


def test_find_and_list_model_versions(store: SqlStore) -> None:
    job_a1, job_b1, job_a2 = (create_job(store) for _ in range(3))
    run = store.start_run(job_a1.id, "refit", "lightgbm", {})
    a1 = store.create_model_version(new_version(job_a1.id, model_name="a", run_id=run.id))
    b1 = store.create_model_version(new_version(job_b1.id, model_name="b"))
    a2 = store.create_model_version(new_version(job_a2.id, model_name="a"))

    assert a1.run_id == run.id and a1.input_schema == [{"name": "a", "dtype": "float64"}]
    assert store.find_model_version("a", 2) == a2
    assert store.get_model_version(b1.id) == b1
    with pytest.raises(NotFound):
        store.find_model_version("a", 3)
    assert store.version_for_job(job_a1.id) == a1
    assert store.version_for_job(create_job(store).id) is None
    assert store.list_model_versions("a") == [a1, a2]
    assert store.list_model_versions() == [a1, a2, b1]  # by name, then version


def test_concurrent_versions_get_distinct_numbers(store: SqlStore) -> None:
    jobs = [create_job(store, model_name="shared") for _ in range(4)]
    barrier = threading.Barrier(len(jobs))
    results: list[ModelVersionRecord] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def register(job_id: int) -> None:
        own = open_store(store.url)
        try:
            barrier.wait(timeout=30)
            record = own.create_model_version(new_version(job_id, model_name="shared"))
            with lock:
                results.append(record)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=register, args=(job.id,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(r.version for r in results) == [1, 2, 3, 4]
    assert {r.job_id for r in results} == {job.id for job in jobs}
    assert [v.version for v in store.list_model_versions("shared")] == [1, 2, 3, 4]


# -- records --------------------------------------------------------------------------------------


def test_records_are_frozen(store: SqlStore) -> None:
    job = create_job(store)
    run = store.start_run(job.id, "trial", "lightgbm", {}, trial_number=0)
    version = store.create_model_version(new_version(job.id))
    store.add_metrics([NewMetric(name="roc_auc", value=0.9, split="cv", run_id=run.id)])
    records: list[Any] = [
        store.get_dataset(job.dataset_id),
        job,
        run,
        version,
        store.list_metrics(run_id=run.id)[0],
    ]
    for record in records:
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.id = 0


# -- views ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("greater_is_better", [True, False])
def test_leaderboard_ranks_in_metric_direction(store: SqlStore, greater_is_better: bool) -> None:
    job = create_job(store, greater_is_better=greater_is_better)
    scores = {0: 0.7, 1: 0.9, 2: 0.8}
    ids: dict[int, int] = {}
    for number, score in scores.items():
        run = store.start_run(job.id, "trial", f"family{number}", {}, trial_number=number)
        store.finish_run(run.id, RunResult(status="succeeded", cv_score=score))
        ids[number] = run.id
    failed = store.start_run(job.id, "trial", "broken", {}, trial_number=3)
    store.finish_run(failed.id, RunResult(status="failed", error_code="TRIAL_FAILED"))
    pruned = store.start_run(job.id, "trial", "pruned", {}, trial_number=4)
    store.finish_run(pruned.id, RunResult(status="pruned", cv_score=0.99 if greater_is_better else 0.01))
    # Another job's runs never show up.
    other = create_job(store)
    store.finish_run(store.start_run(other.id, "trial", "x", {}, trial_number=0).id, RunResult(status="succeeded"))

    rows = store.leaderboard(job.id)
    assert all(row.job_id == job.id for row in rows)
    order = [1, 2, 0] if greater_is_better else [0, 2, 1]
    assert [row.run_id for row in rows[:3]] == [ids[n] for n in order]
    assert [row.rank for row in rows[:3]] == [1, 2, 3]
    assert [row.family for row in rows[:3]] == [f"family{n}" for n in order]
    assert rows[0].job_name == job.name and rows[0].metric == job.metric
    tail = {row.run_id: row for row in rows[3:]}
    assert set(tail) == {failed.id, pruned.id}
    assert all(row.rank is None for row in tail.values())
    assert tail[failed.id].status == "failed" and tail[failed.id].error_code == "TRIAL_FAILED"
    assert store.leaderboard(999_999) == []


def test_leaderboard_ties_share_a_rank(store: SqlStore) -> None:
    job = create_job(store)
    for number, score in enumerate([0.8, 0.9, 0.9]):
        run = store.start_run(job.id, "trial", "lightgbm", {}, trial_number=number)
        store.finish_run(run.id, RunResult(status="succeeded", cv_score=score))
    assert [row.rank for row in store.leaderboard(job.id)] == [1, 1, 3]


def test_version_summaries_newest_first(store: SqlStore) -> None:
    versions = []
    for family in ["lightgbm", "logistic"]:
        dataset = add_dataset(store, name=f"data-{family}")
        job = store.create_job(new_job(dataset.id, model_name="summary"))
        for number in range(2):
            store.start_run(job.id, "trial", family, {}, trial_number=number)
        winner = store.start_run(job.id, "refit", family, {})
        versions.append(store.create_model_version(new_version(job.id, model_name="summary", run_id=winner.id)))
    store.create_model_version(new_version(create_job(store).id, model_name="unrelated"))

    rows = store.version_summaries("summary")
    assert [row.version for row in rows] == [2, 1]
    assert [row.version_id for row in rows] == [versions[1].id, versions[0].id]
    assert [row.winner_family for row in rows] == ["logistic", "lightgbm"]
    assert [row.winner_kind for row in rows] == ["refit", "refit"]
    assert [row.dataset_name for row in rows] == ["data-logistic", "data-lightgbm"]
    assert [row.trials for row in rows] == [2, 2]
    assert rows[0].submitted_by == "tester" and rows[0].artifact_sha256 == "ab" * 32
    assert store.version_summaries("nobody") == []


def test_timestamps_are_utc_whatever_the_server_time_zone(pg_url: str) -> None:
    """A PostgreSQL session in another time zone still yields UTC datetimes."""
    store = open_store(pg_url + "%20-ctimezone%3DAsia%2FTokyo", auto_upgrade=True)
    try:
        assert isinstance(store, SqlStore)
        with store.engine.connect() as conn:
            assert conn.execute(text("SHOW timezone")).scalar() == "Asia/Tokyo"
        job = create_job(store)
        store.claim_job(job.id)
        stored = store.finish_job(job.id, "succeeded")
        again = store.get_job(job.id)
        assert is_utc(again.created_at) and is_utc(again.started_at) and is_utc(again.finished_at)
        assert again.finished_at == stored.finished_at
        assert is_utc(store.get_dataset(job.dataset_id).created_at)
    finally:
        store.close()


def test_view_timestamps_are_utc_datetimes(store: SqlStore) -> None:
    job = create_job(store)
    run = store.start_run(job.id, "trial", "lightgbm", {}, trial_number=0)
    store.finish_run(run.id, RunResult(status="succeeded", cv_score=0.9))
    store.start_run(job.id, "trial", "lightgbm", {}, trial_number=1)
    version = store.create_model_version(new_version(job.id, run_id=run.id))

    finished, running = store.leaderboard(job.id)
    assert finished.started_at == store.get_run(run.id).started_at and is_utc(finished.started_at)
    assert finished.finished_at == store.get_run(run.id).finished_at and is_utc(finished.finished_at)
    assert is_utc(running.started_at) and running.finished_at is None
    (summary,) = store.version_summaries(version.model_name)
    assert summary.created_at == version.created_at and is_utc(summary.created_at)


def test_settling_gives_back_a_slot_claimed_by_a_worker_that_died_before_drawing_its_trial(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claimed slots that no run stands for, with nothing running or drawn, are lost: the cap gets
    its trials run. One claimed while a run is still going is not touched."""
    from automl import fleet

    monkeypatch.setattr(fleet, "LOST_SLOT_GRACE_S", 0.05)
    asked: list[str] = []
    dispatch = fleet.Dispatch(
        run_trials=lambda _id: asked.append("run_trials"),
        finalize=lambda _id: asked.append("finalize"),
        check_later=lambda _id, _s: asked.append("check_later"),
    )
    job = create_job(store)  # a cap of 20 trials, a 60 s budget
    store.claim_job(job.id)
    assert store.claim_trial_slot(job.id, 20) and store.claim_trial_slot(job.id, 20)
    run = store.start_run(job.id, "trial", "linear", {}, trial_number=0, worker="w:1")
    assert fleet.settle(store, job.id, dispatch, lease_s=60.0) == "waiting"  # a live run: wait
    assert store.job_counters(job.id).trials_started == 2
    store.finish_run(run.id, RunResult(status="succeeded", cv_score=0.9))
    assert fleet.settle(store, job.id, dispatch, lease_s=60.0) == "continued"
    assert store.job_counters(job.id).trials_started == 1  # the lost slot is back
    assert asked == ["check_later", "run_trials"]


def test_an_unreachable_store_names_the_cause_of_its_backend(tmp_path: Path) -> None:
    from sqlalchemy.exc import OperationalError

    sqlite = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", auto_upgrade=True)
    locked = sqlite._unavailable(OperationalError("BEGIN", {}, Exception("database is locked")))
    assert "write lock" in (locked.hint or "") and "server" not in (locked.hint or "")
    other = sqlite._unavailable(OperationalError("SELECT", {}, Exception("unable to open database file")))
    assert "writable" in (other.hint or "")
    sqlite.close()
    postgres = SqlStore.__new__(SqlStore)
    postgres.url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    refused = postgres._unavailable(OperationalError("connect", {}, Exception("connection refused")))
    assert "database server is running" in (refused.hint or "")
