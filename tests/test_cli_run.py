"""`automl run` end to end, as a user runs it: a subprocess on a small real data set per task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DATA
from tests.engine_helpers import automl_in, write_spec

pytestmark = pytest.mark.slow  # whole jobs, worker or server processes: left out by `make test-fast`


CASES = [
    # data file, dataset section, task, metric to check, trivial baseline
    ("titanic.csv", {"target": "survived", "drop": ["alive"]}, "classification", "accuracy"),
    ("penguins.csv", {"target": "species"}, "classification", "accuracy"),
    ("diabetes.csv", {"target": "target"}, "regression", "rmse"),
]


def _baseline(data_file: str, target: str, metric: str) -> float:
    y = pd.read_csv(DATA / data_file)[target].dropna()
    if metric == "accuracy":
        return float(y.value_counts(normalize=True).max())  # always the majority class
    return float(y.std(ddof=0))  # always the mean: RMSE is the standard deviation


@pytest.mark.parametrize(("data_file", "dataset", "task", "check"), CASES, ids=["binary", "multiclass", "regression"])
def test_run_beats_a_trivial_baseline(tmp_path: Path, data_file: str, dataset: dict, task: str, check: str) -> None:
    spec = write_spec(
        tmp_path,
        data_file,
        dataset=dataset,
        task=task,
        budget={"time_s": 60},
        candidates={"include": ["linear", "random_forest", "hist_gradient_boosting", "xgboost"]},
        cv={"folds": 3},
    )
    result = automl_in(tmp_path, "run", str(spec), "--trials", "6")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registered" in result.stdout and "leaderboard of job 1" in result.stdout

    shown = automl_in(tmp_path, "jobs", "show", "1", "--json")
    job = json.loads(shown.stdout)
    assert job["status"] == "succeeded"
    holdout = job["summary"]["holdout"][check]
    baseline = _baseline(data_file, dataset["target"], check)
    if check == "accuracy":
        assert holdout >= baseline + 0.10, (holdout, baseline)
    else:
        assert holdout <= 0.85 * baseline, (holdout, baseline)

    board = automl_in(tmp_path, "leaderboard", "1", "--format", "json")
    rows = json.loads(board.stdout)
    assert rows[0]["rank"] == 1 and len([r for r in rows if r["kind"] == "trial"]) == 6
    # The leaderboard marks the row that became the version; the summary names it and why.
    registered = [r for r in rows if r["role"] == "registered"]
    assert len(registered) == 1 and registered[0]["run_id"] == job["summary"]["model"]["run_id"]
    assert "final model:" in result.stdout and "best single trial:" in result.stdout
    csv_out = automl_in(tmp_path, "leaderboard", "1", "--format", "csv", "--top", "3")
    assert csv_out.stdout.splitlines()[0].startswith("rank,run_id")
    assert len(csv_out.stdout.strip().splitlines()) == 4
    versions = automl_in(tmp_path, "leaderboard", "--model", "test-job", "--format", "json")
    assert json.loads(versions.stdout)[0]["version"] == 1


def test_run_reports_a_bad_spec_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "titanic.csv", dataset={"target": "survivd"}, task="classification")
    result = automl_in(tmp_path, "run", str(spec))
    assert result.returncode == 2
    assert "dataset.target" in result.stderr + result.stdout
    listed = automl_in(tmp_path, "jobs", "list", "--json")
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["--time", "-5"], "budget.time_s"),
        (["--time", "0"], "budget.time_s"),
        (["--time", "nan"], "budget.time_s"),
        (["--time", "1e12"], "budget.time_s"),
        (["--trials", "0"], "budget.trials"),
        (["--trials", "100000000"], "budget.trials"),
    ],
)
def test_run_refuses_a_bad_override_by_field_path_and_stores_nothing(
    tmp_path: Path, args: list[str], path: str
) -> None:
    spec = write_spec(tmp_path, "titanic.csv", dataset={"target": "survived"}, task="classification")
    result = automl_in(tmp_path, "run", str(spec), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert path in out and f"from {args[0]}" in out and "Traceback" not in out
    assert json.loads(automl_in(tmp_path, "jobs", "list", "--json").stdout) == []
    assert json.loads(automl_in(tmp_path, "datasets", "list", "--json").stdout) == []


def test_a_bad_setting_in_the_environment_is_named_with_its_rule_not_a_traceback(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "titanic.csv", dataset={"target": "survived"}, task="classification")
    bad = {"AUTOML_PARALLEL_TRIALS": "0", "AUTOML_TRIAL_LEASE_S": "soon"}
    result = automl_in(tmp_path, "run", str(spec), env=bad)
    out = " ".join((result.stdout + result.stderr).split())  # the console wraps long lines
    assert result.returncode == 2, out
    assert "SETTING_INVALID" in out and "Traceback" not in out
    assert "AUTOML_PARALLEL_TRIALS='0': input should be greater than or equal to 1" in out
    assert "AUTOML_TRIAL_LEASE_S='soon'" in out and "unset it to use the default" in out
    assert not (tmp_path / "store.db").exists()  # nothing was written


def test_help_is_fast_and_loads_no_ml_library() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); sys.argv = ['automl', '--help']\n"
        "from automl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'sklearn', 'xgboost', 'lightgbm', 'catboost', 'optuna', 'pandas')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy, time.perf_counter() - t)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("HEAVY"))
    assert line.startswith("HEAVY []"), line


def test_labels_and_names_with_markup_or_escapes_are_printed_as_they_are(tmp_path: Path) -> None:
    """User data reaches the terminal as text: a class label `[/]` (Rich markup) and a column name
    with an ANSI escape neither crash the summary nor colour the terminal."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    frame = pd.DataFrame({"x\x1b[31m": x, "z": rng.normal(size=200), "label": np.where(x > 0, "[/]", "[bold]b")})
    frame.to_csv(tmp_path / "odd.csv", index=False)
    spec = {
        "spec_version": 1, "name": "odd-labels", "seed": 0, "n_jobs": 1, "task": "classification",
        "dataset": {"path": "odd.csv", "target": "label"}, "budget": {"time_s": 60},
        "candidates": {"include": ["linear"]}, "cv": {"folds": 3},
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = automl_in(tmp_path, "run", "spec.json", "--trials", "2", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    shown = automl_in(tmp_path, "jobs", "show", "1")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for out in (result.stdout, shown.stdout):
        assert "'[/]'" in out and "'[bold]b'" in out  # the confusion matrix's classes, verbatim
        assert "\x1b" not in out


@pytest.mark.parametrize(
    ("args", "valid"),
    [
        (["jobs", "list", "--status", "done"], "succeeded"),
        (["leaderboard", "1", "--family", "xgbost"], "xgboost"),
    ],
    ids=["status", "family"],
)
def test_an_unknown_filter_value_is_refused_with_the_valid_ones(tmp_path: Path, args: list[str], valid: str) -> None:
    result = automl_in(tmp_path, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"'{args[-1]}'" in result.stderr and valid in result.stderr
