"""Starting a job on a worker: any failure ends the job `failed` with the error, never `running`."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from automl.artifacts import ArtifactStore
from automl.fleet import Dispatch, start
from automl.pipeline import submit_job
from automl.spec import load_spec_file
from automl.store import open_store
from tests.engine_helpers import write_spec


def test_a_job_that_cannot_start_ends_failed_with_the_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store, artifacts = open_store(url), ArtifactStore(tmp_path / "art")
    spec = write_spec(tmp_path, "diabetes.csv", dataset={"target": "target"}, task="regression")
    job = submit_job(store, artifacts, load_spec_file(spec))
    # A stored spec that no longer validates (written by an older version without override checks).
    document = dict(job.spec)
    document["budget"] = {**document["budget"], "time_s": -5}
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text("UPDATE jobs SET spec = :spec WHERE id = :id"), {"spec": json.dumps(document), "id": job.id})
    sent: list[int] = []
    dispatch = Dispatch(run_trials=sent.append, finalize=sent.append, check_later=lambda j, d: sent.append(j))
    assert start(store, artifacts, job.id, dispatch, parallel=2) == "failed"
    ended = store.get_job(job.id)
    assert ended.status == "failed" and ended.error_code == "INTERNAL_ERROR"
    assert "starting the job failed" in (ended.error_message or "") and "time_s" in (ended.error_message or "")
    assert sent == []  # no trial task was sent for a job that did not start
