"""``automl predict`` on real trained models (SQLite and PostgreSQL), and the input rules it shares
with the HTTP server (:func:`automl.predict.validate_records`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.context import load_model
from automl.predict import validate_records
from tests.conftest import DATA, TRAINED, Trained

pytestmark = pytest.mark.slow  # whole jobs, worker or server processes: left out by `make test-fast`

DATASETS = TRAINED


# -- the input rules (no store involved) ---------------------------------------------------------

SCHEMA = [
    {"name": "n", "kind": "numeric", "dtype": "float64"},
    {"name": "b", "kind": "boolean", "dtype": "bool"},
    {"name": "c", "kind": "categorical", "dtype": "str"},
    {"name": "d", "kind": "datetime", "dtype": "datetime64[ns]"},
]
GOOD = {"n": 1.5, "b": True, "c": "x", "d": "2024-05-01T12:30:00Z"}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("n", 3),
        ("n", "2.5"),
        ("n", " -1e3 "),
        ("n", ""),
        ("n", None),
        ("n", float("nan")),
        ("n", np.float32(2.0)),
        ("b", False),
        ("b", 0),
        ("b", 1.0),
        ("b", "Yes"),
        ("b", "FALSE"),
        ("b", "0"),
        ("c", 7),
        ("c", True),
        ("c", "never seen before"),
        ("d", "2024-05-01"),
        ("d", "2024-05-01 12:30:00+02:00"),
        ("d", None),
    ],
)
def test_accepted_values(column: str, value: Any) -> None:
    assert validate_records([{**GOOD, column: value}], SCHEMA) == []


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("n", "abc", "float_parsing"),
        ("n", True, "float_type"),
        ("n", [1], "float_type"),
        ("n", "inf", "finite_number"),
        ("b", 2, "bool_parsing"),
        ("b", "maybe", "bool_parsing"),
        ("b", {"a": 1}, "bool_type"),
        ("c", ["x"], "scalar_type"),
        ("d", "yesterday", "datetime_parsing"),
        ("d", 1714566600, "datetime_type"),
    ],
)
def test_refused_values_name_row_column_and_rule(column: str, value: Any, problem: str) -> None:
    [found] = validate_records([GOOD, {**GOOD, column: value}], SCHEMA)
    assert (found.row, found.column, found.type, found.value) == (1, column, problem, value)
    assert f"'{column}'" in found.message
    assert found.to_fastapi()["loc"] == ["body", "records", 1, column]


def test_every_problem_is_reported_at_once_and_extra_columns_pass() -> None:
    rows: list[dict[str, Any]] = [{"n": "x", "b": "?", "extra": 1}, {"c": None}]
    found = [(p.row, p.column, p.type) for p in validate_records(rows, SCHEMA)]
    assert found == [
        (0, "n", "float_parsing"),
        (0, "b", "bool_parsing"),
        (0, "c", "missing"),
        (0, "d", "missing"),
        (1, "n", "missing"),
        (1, "b", "missing"),
        (1, "d", "missing"),
    ]
    assert len(validate_records(rows, SCHEMA, limit=3)) == 3


# -- the command, on real models -----------------------------------------------------------------


@pytest.fixture
def env(trained: Trained) -> Trained:
    """titanic, penguins and diabetes, each in production (:func:`tests.conftest.trained`)."""
    return trained


def _automl(
    env: Trained, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the ``automl`` entry point in process on ``env``'s store: (exit code, stdout, stderr)."""
    from automl.cli import common, main

    monkeypatch.setenv("AUTOML_DATABASE_URL", env.url)
    monkeypatch.setenv("AUTOML_ARTIFACT_ROOT", str(env.artifacts.root))
    common.settings.cache_clear()
    monkeypatch.setattr(sys, "argv", ["automl", *args])
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        common.settings.cache_clear()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, " ".join(err.split())  # stderr unwrapped


@pytest.mark.parametrize("name", ["titanic", "penguins", "diabetes"])
def test_predict_writes_the_models_predictions_and_probabilities(
    env: Trained, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = DATA / DATASETS[name][0]  # the target column is there too: it is ignored
    out_file = tmp_path / "preds.csv"
    code, stdout, stderr = _automl(
        env, monkeypatch, capsys, "predict", name, "--input", str(source), "--output", str(out_file), "--proba"
    )
    assert code == 0, stderr
    version = env.versions[name]
    assert f"with {name} v{version.version} (version id {version.id})" in stderr and stdout == ""
    frame = pd.read_csv(source)
    model = load_model(env.store, env.artifacts, version.id)
    written = pd.read_csv(out_file, dtype={"prediction": object} if version.task != "regression" else None)
    assert len(written) == len(frame)
    # Each row's id in the prediction log (generated: these data sets have no id column), logged.
    assert written["row_id"].nunique() == len(frame)
    logged = env.store.list_prediction_logs(name, version_id=version.id, limit=len(frame))
    assert [r.row_id for r in logged] == written["row_id"].tolist()
    assert all(r.source == "predict" for r in logged)
    written = written.drop(columns="row_id")
    if version.task == "regression":
        assert list(written.columns) == ["prediction"]
        assert np.allclose(written["prediction"], model.predict(frame))
        assert np.allclose([r.prediction for r in logged], model.predict(frame))
        return
    assert list(written.columns) == ["prediction", *(f"proba_{c}" for c in model.classes_)]
    assert written["prediction"].tolist() == [str(p) for p in model.predict(frame)]
    assert np.allclose(written.drop(columns="prediction").to_numpy(), model.predict_proba(frame))


def test_predict_prints_csv_to_stdout_for_any_reference(
    env: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = pd.read_csv(DATA / "penguins.csv").drop(columns="species").head(7)
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)
    expected = load_model(env.store, env.artifacts, env.versions["penguins"].id).predict(rows).tolist()
    for ref in ("penguins", "penguins@production", f"penguins:{env.versions['penguins'].version}"):
        code, stdout, stderr = _automl(env, monkeypatch, capsys, "predict", ref, "--input", str(source))
        assert code == 0, stderr
        lines = stdout.splitlines()
        assert [line.split(",", 1)[1] for line in lines] == ["prediction", *expected]
        assert "ignored columns" not in stderr
    logged = len(env.store.list_prediction_logs("penguins"))
    quiet = _automl(env, monkeypatch, capsys, "predict", "penguins", "--input", str(source), "--no-log")
    assert quiet[0] == 0
    assert len(env.store.list_prediction_logs("penguins")) == logged


def test_missing_columns_exit_2_naming_each(
    env: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows.csv"
    pd.read_csv(DATA / "titanic.csv").drop(columns=["sex", "age", "alone"]).head(5).to_csv(source, index=False)
    out_file = tmp_path / "preds.csv"
    code, stdout, stderr = _automl(
        env, monkeypatch, capsys, "predict", "titanic", "--input", str(source), "--output", str(out_file)
    )
    assert code == 2 and stdout == ""
    assert "lacks 3 column(s)" in stderr
    for column, kind in (("sex", "categorical"), ("age", "numeric"), ("alone", "boolean")):
        assert f"'{column}' ({kind})" in stderr
    assert not out_file.exists()


def test_unreadable_values_exit_2_naming_column_and_line(
    env: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(DATA / "titanic.csv", dtype=str).head(5)
    frame.loc[1, "age"] = "old"
    frame.loc[3, "adult_male"] = "perhaps"
    source = tmp_path / "rows.csv"
    frame.to_csv(source, index=False)
    code, _, stderr = _automl(env, monkeypatch, capsys, "predict", "titanic", "--input", str(source))
    assert code == 2
    assert "PREDICT_INPUT_INVALID" in stderr
    assert "age: 1 bad value(s) (line 3: 'old')" in stderr
    assert "adult_male: 1 bad value(s) (line 5: 'perhaps')" in stderr


def test_unknown_model_or_missing_file_exit_2(
    env: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = DATA / "titanic.csv"
    code, _, stderr = _automl(env, monkeypatch, capsys, "predict", "nope", "--input", str(source))
    assert code == 2 and "no model named 'nope'" in stderr and "titanic" in stderr
    code, _, stderr = _automl(env, monkeypatch, capsys, "predict", "titanic@canary", "--input", str(source))
    assert code == 2 and "no 'canary' alias" in stderr
    code, _, stderr = _automl(env, monkeypatch, capsys, "predict", "titanic", "--input", str(tmp_path / "x.csv"))
    assert code == 2 and "does not exist" in stderr
