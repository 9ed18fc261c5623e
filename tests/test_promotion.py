"""The spec's promotion policy on real jobs: never, always, and if_better (champion/challenger on
the new job's holdout), with both outcomes; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from automl.artifacts import ArtifactStore
from automl.registry import resolve
from automl.store import open_store
from tests.engine_helpers import run_spec, write_spec

WEAK_DROP = ["alive", "pclass", "sex", "age", "sibsp", "parch", "fare", "class", "who", "adult_male", "deck", "alone"]


def _job(tmp_path: Path, url: str, artifacts: ArtifactStore, name: str, policy: str, *, weak: bool) -> Any:
    folder = tmp_path / name
    folder.mkdir()
    spec = write_spec(
        folder,
        "titanic.csv",
        dataset={"target": "survived", "drop": WEAK_DROP if weak else ["alive"]},
        task="classification",
        budget={"time_s": None, "trials": 2},
        candidates={"include": ["linear"]},
        cv={"folds": 3},
        ensemble={"enabled": False},
        register={"model_name": "survival", "promote": policy},
    )
    job = run_spec(open_store(url, auto_upgrade=True), artifacts, url, spec)
    assert job.status == "succeeded", (job.error_code, job.error_message)
    return job


def test_promotion_policies(db_url: str, tmp_path: Path) -> None:
    store, artifacts = open_store(db_url, auto_upgrade=True), ArtifactStore(tmp_path / "artifacts")

    never = _job(tmp_path, db_url, artifacts, "never", "never", weak=True)
    assert never.summary["promotion"]["promoted"] is False
    assert store.get_alias("survival", "production") is None

    weak = _job(tmp_path, db_url, artifacts, "weak", "always", weak=True)
    weak_version = store.version_for_job(weak.id)
    assert weak.summary["promotion"]["promoted"] is True
    assert resolve(store, "survival").id == weak_version.id

    strong = _job(tmp_path, db_url, artifacts, "strong", "if_better", weak=False)
    strong_version = store.version_for_job(strong.id)
    decision = strong.summary["promotion"]
    assert decision["promoted"] is True, decision
    champion, challenger = decision["champion"], decision["challenger"]
    assert champion["version_id"] == weak_version.id and challenger["version_id"] == strong_version.id
    assert challenger["holdout_score"] > champion["holdout_score"]  # roc_auc: greater is better
    assert resolve(store, "survival").id == strong_version.id
    event = store.list_alias_events("survival", "production")[-1]
    assert event.to_version_id == strong_version.id and event.from_version_id == weak_version.id
    assert event.details["champion"]["holdout_score"] == champion["holdout_score"]
    assert event.details["challenger"]["holdout_score"] == challenger["holdout_score"]
    assert event.actor == strong.submitted_by and f"job {strong.id}" in (event.reason or "")

    # The same spec again makes an equal model: equal is not better, so the champion stays.
    again = _job(tmp_path, db_url, artifacts, "again", "if_better", weak=False)
    kept = again.summary["promotion"]
    assert kept["promoted"] is False and kept["decision"].startswith("kept"), kept
    assert kept["champion"]["holdout_score"] == kept["challenger"]["holdout_score"]
    assert resolve(store, "survival").id == strong_version.id
    assert len(store.list_alias_events("survival")) == 2  # weak (always), strong (if_better)
    json.dumps(kept)  # the summary is plain JSON
