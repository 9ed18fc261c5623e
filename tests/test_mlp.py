"""The Keras MLP family: estimator conformance, training hooks, pickling, lazy import, selection."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from automl.candidates import SelectionContext, build_estimator, get_family, select_candidates
from automl.candidates.mlp import (
    KerasMLPClassifier,
    KerasMLPRegressor,
    epoch_reporter,
    hidden_layer_sizes,
    set_epoch_reporter,
)
from automl.errors import ArtifactCorrupt
from automl.preprocessing import plan_features
from automl.profile import profile_frame, with_target
from tests.conftest import SHARED_DATASETS

DATASETS = SHARED_DATASETS
TASKS = {
    "binary": ("titanic", "survived"),
    "multiclass": ("penguins", "species"),
    "regression": ("diabetes", "target"),
}
# Small and quick: a few epochs of a narrow network, a large step so the checks' accuracy
# thresholds (e.g. > 0.83 on blobs) are met within them.
SMALL: dict[str, Any] = {
    "hidden_layer_sizes": (16,),
    "learning_rate": 0.02,
    "batch_size": 32,
    "max_epochs": 15,
    "patience": 5,
    "random_state": 0,
    "n_jobs": 1,
}


@pytest.fixture(autouse=True)
def _no_reporter() -> Any:
    """No test leaks an epoch reporter into the next one."""
    set_epoch_reporter(None)
    yield
    set_epoch_reporter(None)


def _expected_failed_checks(estimator: Any) -> dict[str, str]:
    """Checks that cannot apply, with why. None today: both estimators pass every check (the two
    array-API checks skip themselves unless SCIPY_ARRAY_API is set). The sample-order and subset
    invariance checks pass every time because predictions are computed in float64; see
    test_predictions_are_float64_and_independent_of_row_order."""
    return {}


@parametrize_with_checks(  # type: ignore[untyped-decorator]
    [KerasMLPClassifier(**SMALL), KerasMLPRegressor(**SMALL)],
    expected_failed_checks=_expected_failed_checks,
)
@pytest.mark.slow
def test_estimators_conform_to_scikit_learn(estimator: Any, check: Any) -> None:
    check(estimator)


def _classification(n: int = 300, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n, 8, n_informative=5, n_classes=classes, random_state=0)
    return X, y


def test_classifier_string_labels_and_probabilities() -> None:
    X, y = _classification(classes=3)
    labels = np.array(["low", "mid", "high"])[y]
    model = KerasMLPClassifier(**SMALL).fit(X, labels)
    assert list(model.classes_) == ["high", "low", "mid"]
    proba = model.predict_proba(X)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert set(model.predict(X)) <= set(labels)
    assert model.score(X, labels) > 0.7


@pytest.mark.parametrize(
    ("estimator", "classes", "params"),
    [
        (KerasMLPClassifier, 2, {}),
        (KerasMLPClassifier, 3, {"hidden_layer_sizes": (32, 16, 8), "batch_norm": True}),
        (KerasMLPRegressor, 0, {"hidden_layer_sizes": (16, 8), "batch_norm": True, "dropout": 0.3}),
    ],
)
def test_predictions_are_float64_and_independent_of_row_order(estimator: Any, classes: int, params: Any) -> None:
    # Keras's float32 outputs for a row move by ~5e-8 with its position in the batch, which failed
    # scikit-learn's sample-order check (atol 1e-9, rtol 1e-7); the float64 replica does not.
    X, y = _classification(n=2000, classes=max(classes, 2))
    model = estimator(**{**SMALL, **params, "max_epochs": 3}).fit(X, y if classes else y + 0.5 * X[:, 0])
    network = model.model_(X.astype(np.float32), training=False).numpy()
    if classes:
        proba = model.predict_proba(X)
        assert proba.dtype == np.float64
        # The replica computes what Keras computes, to float32 precision.
        np.testing.assert_allclose(
            proba[:, 1] if classes == 2 else proba, network[:, 0] if classes == 2 else network, rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(model.predict(X), model.classes_[np.argmax(proba, axis=1)])
    else:
        np.testing.assert_allclose(
            model.predict(X), network[:, 0] * model.y_scale_ + model.y_mean_, rtol=1e-5, atol=1e-5 * model.y_scale_
        )
    methods = ["predict", "predict_proba"] if classes else ["predict"]
    for order in (np.arange(len(X))[::-1], np.random.RandomState(1).permutation(len(X))):
        for method in methods:
            whole, reordered = getattr(model, method)(X), getattr(model, method)(X[order])
            np.testing.assert_allclose(reordered, whole[order], rtol=1e-12, atol=1e-12, err_msg=method)
    # Rows predicted one at a time (a different matmul path) agree as well.
    for method in methods:
        one = np.concatenate([getattr(model, method)(X[i : i + 1]) for i in range(5)])
        np.testing.assert_allclose(one, getattr(model, method)(X[:5]), rtol=1e-12, atol=1e-12, err_msg=method)


def test_a_network_the_float64_replica_does_not_know_falls_back_to_keras() -> None:
    import keras

    X, y = make_regression(100, 4, random_state=0)
    model = KerasMLPRegressor(**{**SMALL, "max_epochs": 1}).fit(X, y)
    inputs = keras.Input(shape=(4,))
    model.model_ = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LayerNormalization()(inputs)))
    expected = model.model_(X.astype(np.float32), training=False).numpy()[:, 0].astype(np.float64)
    np.testing.assert_allclose(model.predict(X), expected * model.y_scale_ + model.y_mean_, rtol=1e-12)


def test_history_and_learning_rate_warm_up_then_decay() -> None:
    X, y = _classification()
    model = KerasMLPClassifier(**{**SMALL, "max_epochs": 30, "patience": 30}).fit(X, y)
    assert model.n_epochs_ == 30 and model.stop_reason_ == "max_epochs" and not model.pruned_
    assert [row["epoch"] for row in model.history_] == list(range(1, 31))
    assert all(set(row) == {"epoch", "loss", "val_loss", "lr"} for row in model.history_)
    lrs = [row["lr"] for row in model.history_]
    peak = int(np.argmax(lrs))
    # Three epochs of warm-up to the peak, then a cosine down to 5% of it.
    assert peak == 2 and lrs[0] < lrs[1] < lrs[2]
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :], strict=False))
    assert lrs[-1] < 0.1 * lrs[peak]
    best = min(row["val_loss"] for row in model.history_)
    assert model.history_[model.best_epoch_ - 1]["val_loss"] == best


def test_epoch_reporter_prunes_training() -> None:
    X, y = _classification()
    seen: list[tuple[int, dict[str, float]]] = []

    def reporter(epoch: int, logs: dict[str, float]) -> bool:
        seen.append((epoch, logs))
        return epoch == 3

    set_epoch_reporter(reporter)
    model = KerasMLPClassifier(**{**SMALL, "patience": 50}).fit(X, y)
    assert model.pruned_ and model.stop_reason_ == "pruned"
    assert model.n_epochs_ == 3 and [e for e, _ in seen] == [1, 2, 3]
    assert all({"loss", "val_loss", "lr"} <= set(logs) for _, logs in seen)
    assert seen[0][1]["val_loss"] == model.history_[0]["val_loss"]

    set_epoch_reporter(None)
    model = KerasMLPRegressor(**{**SMALL, "max_epochs": 4, "patience": 50}).fit(X, y.astype(float))
    assert not model.pruned_ and model.n_epochs_ == 4 and len(seen) == 3

    with epoch_reporter(lambda epoch, logs: True):
        assert KerasMLPRegressor(**SMALL).fit(X, y.astype(float)).n_epochs_ == 1
    assert KerasMLPRegressor(**{**SMALL, "max_epochs": 2}).fit(X, y.astype(float)).n_epochs_ == 2


def test_max_time_s_bounds_the_epochs() -> None:
    X, y = _classification(n=2000)
    model = KerasMLPClassifier(**{**SMALL, "max_epochs": 10_000, "patience": 10_000, "max_time_s": 0.5}).fit(X, y)
    assert model.stop_reason_ == "max_time"
    assert 1 <= model.n_epochs_ < 10_000


def test_parameters_are_validated_with_the_house_message() -> None:
    X, y = _classification(n=50)
    with pytest.raises(ValueError, match=r"The 'dropout' parameter of KerasMLPClassifier must be .* Got 1.5 instead"):
        KerasMLPClassifier(dropout=1.5).fit(X, y)
    with pytest.raises(ValueError, match="'hidden_layer_sizes'"):
        KerasMLPRegressor(hidden_layer_sizes=(8, 8, 8, 8)).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        KerasMLPClassifier(**SMALL).fit(X, np.zeros(50))


def test_tampered_network_bytes_are_refused() -> None:
    X, y = _classification(n=100)
    model = KerasMLPClassifier(**{**SMALL, "max_epochs": 2}).fit(X, y)
    state = model.__getstate__()
    assert "model_" not in state and state["_keras_model_bytes"][:2] == b"PK"  # a .keras zip
    data = bytearray(state["_keras_model_bytes"])
    data[len(data) // 2] ^= 0xFF  # flip one byte in the middle of the archive
    state["_keras_model_bytes"] = bytes(data)
    clone = KerasMLPClassifier.__new__(KerasMLPClassifier)
    with pytest.raises(ArtifactCorrupt, match="fails its checksum: expected sha256") as info:
        clone.__setstate__(state)
    assert info.value.code == "ARTIFACT_CORRUPT"
    # The pickle of the estimator itself still round-trips in this process: the same weights, and
    # so the same predictions (to float64 rounding, which cannot hide a changed float32 weight).
    again = pickle.loads(pickle.dumps(model))
    for restored, original in zip(again.model_.get_weights(), model.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(restored, original)
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X), rtol=1e-12, atol=1e-12)


class Task:
    def __init__(self, task: str) -> None:
        name, target = TASKS[task]
        frame = pd.read_csv(DATASETS / f"{name}.csv")
        self.profile = with_target(profile_frame(frame), frame, target, task)
        self.plan = plan_features(self.profile, target, [], self.profile.leaks, None)
        sample = frame.sample(n=min(260, len(frame)), random_state=0).reset_index(drop=True)
        y = sample[target]
        if task == "regression":
            self.y = y.to_numpy(dtype=float)
        else:
            classes = sorted(frame[target].unique())
            self.y = y.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int)
            self.classes = len(classes)
        self.X = sample.drop(columns=[target])


@pytest.mark.parametrize("task", list(TASKS))
def test_family_builds_a_pipeline_that_takes_raw_rows(task: str) -> None:
    data = Task(task)
    model = build_estimator("mlp", {"max_epochs": 5}, task, seed=0, n_jobs=1, plan=data.plan, profile=data.profile)
    network = model.named_steps["model"]
    assert isinstance(network, KerasMLPRegressor if task == "regression" else KerasMLPClassifier)
    assert network.hidden_layer_sizes == (64, 32) and network.random_state == 0
    model.fit(data.X.iloc[:200], data.y[:200])
    X_test = data.X.iloc[200:]
    if task == "regression":
        pred = model.predict(X_test)
        assert pred.shape == (len(X_test),) and np.isfinite(pred).all()
    else:
        proba = model.predict_proba(X_test)
        assert proba.shape == (len(X_test), data.classes)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)


_LOAD_AND_PREDICT = """
import json, sys
import joblib, numpy as np, pandas as pd
paths = json.loads(sys.argv[1])
for model_path, rows_path, out_path in paths:
    model = joblib.load(model_path)
    rows = pd.read_pickle(rows_path)
    step = model.steps[-1][1]
    out = model.predict_proba(rows) if hasattr(step, "predict_proba") else model.predict(rows)
    np.save(out_path, out)
import tensorflow as tf  # already loaded by the unpickling, which capped its threads at n_jobs=1
threads = tf.config.threading
print(threads.get_intra_op_parallelism_threads(), threads.get_inter_op_parallelism_threads())
"""


@pytest.mark.slow
def test_saved_models_predict_the_same_in_a_fresh_process(tmp_path: Path) -> None:
    jobs: list[tuple[str, str, str]] = []
    expected: list[np.ndarray] = []
    # A whole automl pipeline on raw titanic rows, and a plain scikit-learn pipeline for regression.
    data = Task("binary")
    titanic = build_estimator(
        "mlp", {"max_epochs": 5, "batch_norm": True}, "binary", 0, 1, data.plan, data.profile
    ).fit(data.X.iloc[:200], data.y[:200])
    X_reg, y_reg = make_regression(200, 6, noise=1.0, random_state=0)
    regression = make_pipeline(StandardScaler(), KerasMLPRegressor(**SMALL)).fit(X_reg, y_reg)
    for i, (model, rows) in enumerate([(titanic, data.X.iloc[200:]), (regression, pd.DataFrame(X_reg[:50]))]):
        paths = (str(tmp_path / f"m{i}.joblib"), str(tmp_path / f"rows{i}.pkl"), str(tmp_path / f"out{i}.npy"))
        joblib.dump(model, paths[0])
        rows.to_pickle(paths[1])
        jobs.append(paths)
        predict = model.predict_proba if i == 0 else model.predict
        expected.append(predict(rows if i == 0 else rows.to_numpy()))
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_PREDICT, json.dumps(jobs)], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["1", "1"]
    # The same predictions, to float64 rounding (BLAS may split rows across its threads differently
    # in another process); a retrained or altered network would differ by far more.
    for (_, _, out_path), want in zip(jobs, expected, strict=True):
        np.testing.assert_allclose(np.load(out_path), want, rtol=1e-12, atol=1e-12)


def test_importing_and_building_the_family_does_not_load_tensorflow() -> None:
    code = (
        "import sys\n"
        "import automl.candidates\n"
        "from automl.candidates import get_family\n"
        "family = get_family('mlp')\n"
        "family.build(family.defaults('binary'), 'binary', 0, 1)\n"
        "family.build(family.defaults('regression'), 'regression', 0, 1)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == ""


def test_family_search_space_and_funnel() -> None:
    family = get_family("mlp")
    assert family.style == "scaled" and family.tasks == {"binary", "multiclass", "regression"}
    assert hidden_layer_sizes(1, 64) == (64,)
    assert hidden_layer_sizes(3, 16) == (16, 8, 8)
    assert hidden_layer_sizes(3, 512) == (512, 256, 128)


def test_selection_rules() -> None:
    def choice(ctx: SelectionContext) -> Any:
        return next(c for c in select_candidates(ctx, None, []) if c.family == "mlp")

    small = choice(SelectionContext("binary", rows=891, features=11, categorical=6))
    assert not small.selected
    assert small.reason == "mlp skipped: 891 rows < 1,000 (a network needs more rows than the tree families)"
    categorical = choice(SelectionContext("binary", rows=5_000, features=10, categorical=6))
    assert not categorical.selected and "6 of 10 features are categorical" in categorical.reason
    chosen = choice(SelectionContext("regression", rows=5_000, features=20, categorical=4))
    assert chosen.selected
    assert chosen.reason == "selected: neural network, 5,000 rows >= 1,000 and 16 of 20 features not categorical"
    forced = select_candidates(SelectionContext("binary", rows=300, features=4, categorical=4), ["mlp"], [])
    assert next(c for c in forced if c.family == "mlp").selected


def test_a_diverging_fit_stops_at_the_first_non_finite_loss() -> None:
    X, y = make_regression(200, 5, random_state=0)
    X[:, 0] *= 1e30  # unscaled huge inputs overflow float32 activations at once
    model = KerasMLPRegressor(**{**SMALL, "learning_rate": 1.0, "patience": 50}).fit(X, y)
    assert model.stop_reason_ == "diverged" and model.n_epochs_ == 1
