"""Warm start from the store: a job whose data matches an earlier job's (the same data set, or
the same target and input columns) first tries that job's best configurations, before the
portfolio and the sampler. A retrain on new rows is the common case: what won last time is the
best first guess this time (as in the warm starts of FLAML and Auto-sklearn's meta-learning,
with our own history as the meta-data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from automl.portfolio import Entry
from automl.store.base import Store
from automl.store.records import JobRecord

WARM_TRIALS = 3  # the earlier job's best configurations tried first
SEARCHED_JOBS = 200  # how far back (succeeded jobs, newest first) a match is looked for


@dataclass(frozen=True)
class WarmStart:
    job_id: int
    match: str  # "the same data set" or "the same target and input columns"
    entries: list[Entry]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "match": self.match,
            "configurations": [{"family": e.family, "params": e.params} for e in self.entries],
            "note": f"warm-started from job {self.job_id} ({self.match})",
        }


def _match(store: Store, job: JobRecord, earlier: JobRecord, features: set[tuple[str, str]]) -> str | None:
    if earlier.id >= job.id or earlier.task != job.task:
        return None
    if earlier.spec.get("dataset", {}).get("target") != job.spec.get("dataset", {}).get("target"):
        return None
    if earlier.dataset_id == job.dataset_id:
        return "the same data set"
    version = store.version_for_job(earlier.id)
    if version is None or {(c["name"], c["kind"]) for c in version.input_schema} != features:
        return None
    return "the same target and input columns"


def find_warm_start(
    store: Store, job: JobRecord, features: list[tuple[str, str]], families: list[str]
) -> WarmStart | None:
    """The newest earlier succeeded job that matches ``job`` and its best distinct configurations
    of the families this job may use; None when there is none."""
    wanted = set(features)
    for earlier in store.list_jobs(status="succeeded", limit=SEARCHED_JOBS):
        match = _match(store, job, earlier, wanted)
        if match is None:
            continue
        runs = [
            r
            for r in store.list_runs(earlier.id)
            if r.kind == "trial" and r.status == "succeeded" and r.cv_score is not None and r.family in families
        ]
        runs.sort(key=lambda r: r.cv_score or 0.0, reverse=earlier.greater_is_better)
        entries: list[Entry] = []
        for run in runs:
            entry = Entry(run.family, dict(run.params), f"warm start: job {earlier.id}")
            if entry not in entries:
                entries.append(entry)
            if len(entries) == WARM_TRIALS:
                break
        if entries:
            return WarmStart(earlier.id, match, entries)
    return None
