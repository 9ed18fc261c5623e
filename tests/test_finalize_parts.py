"""Finalizing under a short wall, step by step: the part of an ensemble that could be refit, the
time kept for saving the model, each member loaded once however many saved models hold it."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.artifacts import ArtifactStore
from automl.finalize import ModelWriter, Selection, _best_part, extend_to_all_rows, refit_estimate, refit_members
from automl.preprocessing import plan_features
from automl.profile import profile_frame, with_target
from automl.store.records import RunRecord
from automl.training import JobData, prepare_data


def _data(rows: int = 400) -> JobData:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["x0", "x1", "x2"])
    frame["y"] = (frame["x0"] + rng.normal(scale=1.0, size=rows) > 0).astype(int)
    profile = with_target(profile_frame(frame), frame, "y", "binary")
    plan = plan_features(profile, "y", [], [], None)
    return prepare_data(
        frame, target="y", task="binary", metric="roc_auc", plan=plan, profile=profile,
        holdout_fraction=0.2, folds=5, seed=0, n_jobs=1,
    )  # fmt: skip


def _run(run_id: int, family: str, cv: float | None, oof_uri: str | None = None, fit_s: float = 0.1) -> RunRecord:
    return RunRecord(
        id=run_id, job_id=1, kind="trial", trial_number=run_id, family=family, params={}, status="succeeded",
        cv_score=cv, cv_std=None, fold_scores=None, holdout_score=None, fit_seconds=fit_s, members=None,
        oof_uri=oof_uri, model_uri=None, model_sha256=None, error_code=None, error_message=None, worker=None,
        heartbeat_at=None, started_at=None,  # type: ignore[arg-type]
        finished_at=None,
    )  # fmt: skip


def _scored(arts: ArtifactStore, data: JobData, run_id: int, family: str, oof: np.ndarray) -> RunRecord:
    buffer = io.BytesIO()
    np.save(buffer, oof, allow_pickle=False)
    key = f"jobs/1/oof/trial-{run_id}.npy"
    arts.put_bytes(key, buffer.getvalue())
    cv = float(np.mean([data.metric.score(data.y[valid], oof[valid]) for _, valid in data.folds]))
    return _run(run_id, family, cv, key)


def _probabilities(data: JobData, noise: float, seed: int) -> np.ndarray:
    """Out-of-fold probabilities of a model that knows the label up to ``noise``."""
    rng = np.random.default_rng(seed)
    positive = 1 / (1 + np.exp(-(2 * data.y - 1 + rng.normal(scale=noise, size=len(data.y)))))
    return np.column_stack([1 - positive, positive])


def test_the_refit_part_of_an_ensemble_is_kept_when_its_blend_beats_the_lead(tmp_path: Path) -> None:
    data, arts = _data(), ArtifactStore(tmp_path / "art")
    lead = _scored(arts, data, 1, "lightgbm", _probabilities(data, 2.0, 1))
    other = _scored(arts, data, 2, "knn", _probabilities(data, 2.0, 2))  # errs on other rows
    fitted = [(lead, 0.5, {"key": "a"}), (other, 0.3, {"key": "b"})]
    part, reason = _best_part(arts, data, fitted, chosen=3, chosen_reason="the ensemble: CV 0.9", reason="")
    assert [run.id for run, _, _ in part] == [1, 2]
    assert sum(w for _, w, _ in part) == pytest.approx(1.0)
    assert [w for _, w, _ in part] == pytest.approx([0.5 / 0.8, 0.3 / 0.8])  # the chosen weights, rescaled
    assert "2 of 3 members" in reason and "beats the best single trial's" in reason


def test_the_lead_alone_is_kept_when_the_refit_part_does_not_beat_it(tmp_path: Path) -> None:
    data, arts = _data(), ArtifactStore(tmp_path / "art")
    lead = _scored(arts, data, 1, "lightgbm", _probabilities(data, 1.0, 1))
    rng = np.random.default_rng(3)
    coin = rng.uniform(size=len(data.y))
    noise = _scored(arts, data, 2, "knn", np.column_stack([1 - coin, coin]))  # knows nothing
    fitted = [(lead, 0.4, {"key": "a"}), (noise, 0.4, {"key": "b"})]
    part, reason = _best_part(arts, data, fitted, chosen=3, chosen_reason="the ensemble: CV 0.9", reason="")
    assert [(run.id, w) for run, w, _ in part] == [(1, 1.0)]  # alone, it carries all the weight
    assert reason.startswith("lightgbm (trial 1) alone: the ensemble could not be refit")
    # One member fitted: the lead alone, without reading any predictions.
    only, _ = _best_part(arts, data, fitted[:1], chosen=3, chosen_reason="the ensemble: CV 0.9", reason="")
    assert [(run.id, w) for run, w, _ in only] == [(1, 1.0)]


def test_after_the_lead_the_cheapest_members_are_refit_first(tmp_path: Path) -> None:
    """A costly member that runs out of time is the last one tried, so the cheap ones are not
    left without time by it (a forest's refit killed at the wall took a penguins job's linear and
    neighbours members with it: the lead alone was registered)."""
    data, arts = _data(), ArtifactStore(tmp_path / "art")
    job: Any = type("Job", (), {"id": 7, "model_name": "m", "task": "binary", "time_budget_s": None})()
    lead, forest, neighbours = (
        _run(1, "linear", 0.8, fit_s=0.2),
        _run(2, "random_forest", 0.79, fit_s=3.0),
        _run(3, "knn", 0.78, fit_s=0.01),
    )
    assert refit_estimate(neighbours, data) < refit_estimate(lead, data) < refit_estimate(forest, data)
    selection = Selection(lead, [lead, forest, neighbours], [0.5, 0.3, 0.2])
    out = refit_members(arts, job, data, selection, [lead, forest, neighbours], wall_end=None)
    assert [(run.id, weight) for run, weight, _ in out.fitted] == [(1, 0.5), (3, 0.2), (2, 0.3)]
    assert all(arts.exists(fit["key"]) for _, _, fit in out.fitted)


class _CountingStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.loads: list[str] = []

    def get_object(self, key: str, sha256: str) -> Any:
        self.loads.append(key)
        return super().get_object(key, sha256)


def test_a_member_in_both_the_evaluation_and_the_final_model_is_loaded_once(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    data, arts = _data(), _CountingStore(tmp_path / "art")
    members = []
    for name, c in (("a", 1.0), ("b", 0.01), ("b-all-rows", 0.02)):
        model = LogisticRegression(C=c).fit(data.X, data.y)
        members.append({"key": f"members/{name}.joblib", "sha256": arts.put_object(f"members/{name}.joblib", model)})
    job: Any = type("Job", (), {"id": 7, "model_name": "m", "task": "binary"})()
    writer = ModelWriter(arts, job, data, [0.6, 0.4], (1.0, 1e-4))
    evaluation_key, _ = writer.save(f"{writer.base}/evaluation.joblib", members[:2])
    final_key, final_sha = writer.save(f"{writer.base}/model.joblib", [members[0], members[2]])
    assert arts.loads == ["members/a.joblib", "members/b.joblib", "members/b-all-rows.joblib"]
    final = arts.get_object(final_key, final_sha)
    assert final.predict_proba(data.X_holdout).shape == (len(data.y_holdout), 2)
    # With no all-rows refit, the evaluation model becomes the final one by a rename.
    arts.move(evaluation_key, f"{writer.base}/moved.joblib")
    assert not arts.exists(evaluation_key) and arts.exists(f"{writer.base}/moved.joblib")


def test_all_rows_refits_leave_the_time_the_final_save_takes(tmp_path: Path) -> None:
    data, arts = _data(), ArtifactStore(tmp_path / "art")
    job: Any = type("Job", (), {"id": 7, "model_name": "m", "task": "binary"})()
    run = _run(1, "linear", 0.8, fit_s=0.05)
    fitted = [(run, 1.0, {"key": "a"})]
    wall_end = time.monotonic() + 30.0
    # Saving took 25 s once: after it, nothing would be left for a refit to finish in.
    assert extend_to_all_rows(arts, job, data, fitted, wall_end, save_s=25.0) == {}
    done = extend_to_all_rows(arts, job, data, fitted, wall_end, save_s=0.2)
    assert done[1]["rows"] == len(data.y) + len(data.y_holdout)


def test_the_writers_room_for_a_member_is_its_measured_save_or_its_sizes_estimate(tmp_path: Path) -> None:
    from automl.finalize import WRITER_SAVE_FACTOR, _save_room
    from automl.training import ARRAY_SAVE_S_PER_MB, SAVE_S_PER_MB

    arts = ArtifactStore(tmp_path)
    arts.put_bytes("m.joblib", b"\0" * 10_000_000)  # 10 MB
    # A forest's arrays load and save fast: its size allows little, the measured save decides.
    assert _save_room(arts, "extra_trees", {"key": "m.joblib", "save_s": 0.2}) == pytest.approx(
        WRITER_SAVE_FACTOR * 0.2
    )
    assert _save_room(arts, "extra_trees", {"key": "m.joblib"}) == pytest.approx(10 * ARRAY_SAVE_S_PER_MB)
    # A booster is parsed on load: its size's estimate stands when the save alone was quick.
    assert _save_room(arts, "lightgbm", {"key": "m.joblib", "save_s": 0.01}) == pytest.approx(10 * SAVE_S_PER_MB)


def test_models_saved_by_joblib_before_still_load_and_models_saved_now_load_with_joblib(tmp_path: Path) -> None:
    """Models are pickled by the C pickler now (a forest saves many times faster); files that
    ``joblib.dump`` wrote (arrays stored beside the pickle stream) still load, and a user's
    ``joblib.load`` still reads a saved model."""
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    from automl.artifacts import JOBLIB_ARRAY

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 4)), rng.integers(0, 2, 200)
    forest = RandomForestClassifier(20, random_state=0).fit(X, y)
    expected = forest.predict_proba(X)
    arts = ArtifactStore(tmp_path)

    old = io.BytesIO()
    joblib.dump(forest, old)
    assert JOBLIB_ARRAY in old.getvalue()  # the marker the loader tells the two formats apart by
    old_sha = arts.put_bytes("models/old.joblib", old.getvalue())
    np.testing.assert_array_equal(arts.get_object("models/old.joblib", old_sha).predict_proba(X), expected)

    new_sha = arts.put_object("models/new.joblib", forest)
    assert JOBLIB_ARRAY not in arts.path("models/new.joblib").read_bytes()
    np.testing.assert_array_equal(arts.get_object("models/new.joblib", new_sha).predict_proba(X), expected)
    np.testing.assert_array_equal(joblib.load(arts.path("models/new.joblib")).predict_proba(X), expected)


def test_a_lead_whose_measured_prediction_fits_without_its_margin_is_tried_before_the_fallback(
    tmp_path: Path,
) -> None:
    """On 300,000 rows the leading LightGBM fit's prediction of the holdout, priced with its
    margin, passed the time left by a second, and a fit with 25 % more loss was registered while
    a third of the wall went unused. Tried first with the fallback's time kept free, it is had."""
    import dataclasses

    from automl.finalize import member_estimate
    from automl.training import ESTIMATE_MARGIN, build

    data, arts = _data(), ArtifactStore(tmp_path / "art")
    job: Any = type("Job", (), {"id": 7, "model_name": "m", "task": "binary", "time_budget_s": 60.0})()

    def kept(run_id: int, family: str, cv: float, fit_s: float, per_row_s: float) -> RunRecord:
        model = build(data, family, {})
        model.fit(data.X, data.y)
        key = f"jobs/7/trials/trial-{run_id}.joblib"
        sha = arts.put_object(key, model)
        return dataclasses.replace(
            _run(run_id, family, cv, fit_s=fit_s), model_uri=key, model_sha256=sha, predict_seconds_per_row=per_row_s
        )

    # The lead's prediction is measured at 8 s (plus loading); the fallback's is instant.
    lead = kept(1, "hist_gradient_boosting", 0.9, fit_s=300.0, per_row_s=8.0 / len(data.y_holdout))
    fallback = kept(2, "linear", 0.8, fit_s=0.01, per_row_s=1e-6)
    expected = data.predict_estimate(lead.family, 300.0, lead.predict_seconds_per_row)
    left = ESTIMATE_MARGIN * expected  # short of the margined estimate, the safety second included
    assert member_estimate(lead, data) == pytest.approx(left)
    assert expected + member_estimate(fallback, data) < left - 1.0

    def finalize(runs: list[RunRecord]) -> Any:
        selection = Selection(runs[0], [runs[0]], [1.0])
        return refit_members(arts, job, data, selection, runs, wall_end=time.monotonic() + left)

    out = finalize([lead, fallback])
    assert [run.id for run, _, _ in out.fitted] == [1] and out.reason == ""
    assert out.fitted[0][2]["reused"] and out.fitted[0][2]["holdout"].shape == (len(data.y_holdout), 2)
    # Without a measured prediction the estimate is all there is: the fallback, as before.
    unmeasured = dataclasses.replace(lead, predict_seconds_per_row=None)
    assert data.predict_estimate(lead.family, 300.0) > left
    out = finalize([unmeasured, fallback])
    assert [run.id for run, _, _ in out.fitted] == [2] and out.reason.startswith("linear (trial 2) alone")
