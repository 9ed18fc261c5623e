"""Hostile input, one table: every bad spec, override and data set is refused with exit 2, a named
error code and the JSON path (or column) at fault, and the store is left exactly as it was (row
counts of every table before and after), whichever command met it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import DATA
from tests.engine_helpers import automl_in

pytestmark = pytest.mark.slow  # one `automl` process per case

TABLES = ("datasets", "jobs", "runs", "model_versions", "metrics", "model_aliases", "alias_events")


def _counts(tmp_path: Path) -> dict[str, int]:
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.connect() as conn:
        counts = {t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()) for t in TABLES}
    engine.dispose()
    return counts


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "spec_version": 1, "name": "hostile", "task": "classification", "seed": 0,
        "dataset": {"path": "data.csv", "target": "y"}, "budget": {"time_s": 30},
    }  # fmt: skip
    spec.update(overrides)
    return spec


def _good_data(path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    pd.DataFrame({"x": x, "z": rng.normal(size=120), "y": np.where(x > 0, "a", "b")}).to_csv(path, index=False)


def _write(tmp_path: Path, spec: Any, data: Callable[[Path], None] = _good_data) -> Path:
    data(tmp_path / "data.csv")
    path = tmp_path / "spec.json"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return path


def _frame(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.to_csv(path, index=False)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seeded")
    (folder / "good.csv").write_bytes((DATA / "titanic.csv").read_bytes())
    assert automl_in(folder, "datasets", "add", "good.csv", "--target", "survived").returncode == 0
    return folder


def _wide(rows: int, columns: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.integers(0, 3, size=(rows, columns)), columns=[f"c{i}" for i in range(columns)])
    frame["y"] = np.where(frame["c0"] > 0, "a", "b")
    return frame


# (case id, spec document or text, data writer, extra CLI arguments, error code, what the message names)
CASES: list[tuple[str, Any, Callable[[Path], None], list[str], str, str]] = [
    # 1. overrides meet the spec's rules
    ("time-negative", _spec(), _good_data, ["--time", "-5"], "SPEC_INVALID", "budget.time_s"),
    ("time-nan", _spec(), _good_data, ["--time", "nan"], "SPEC_INVALID", "budget.time_s"),
    ("trials-zero", _spec(), _good_data, ["--trials", "0"], "SPEC_INVALID", "budget.trials"),
    # 4. big or odd specs
    ("huge-name", _spec(name="n" * 100_000), _good_data, [], "SPEC_INVALID", "name"),
    ("duplicate-key", '{"spec_version": 1, "name": "a", "name": "b"}', _good_data, [], "SPEC_INVALID", "name"),
    ("bool-as-number", _spec(budget={"trials": True}), _good_data, [], "SPEC_INVALID", "budget.trials"),
    ("string-as-number", _spec(budget={"time_s": "15"}), _good_data, [], "SPEC_INVALID", "budget.time_s"),
    ("deep-nesting", "[" * 10_000 + "]" * 10_000, _good_data, [], "SPEC_INVALID", "nest"),
    (
        "nul-in-path",
        _spec(dataset={"path": "da\u0000ta.csv", "target": "y"}),
        _good_data,
        [],
        "SPEC_INVALID",
        "dataset.path",
    ),
    (
        "url-path",
        _spec(dataset={"path": "https://example.com/d.csv", "target": "y"}),
        _good_data,
        [],
        "SPEC_INVALID",
        "dataset.path",
    ),
    ("huge-n-jobs", _spec(n_jobs=10**9), _good_data, [], "SPEC_INVALID", "n_jobs"),
    # 5. data that cannot train
    (
        "six-rows",
        _spec(),
        _frame(pd.DataFrame({"x": [1, 5, 2, 7, 3, 4], "y": list("aabbcc")})),
        [],
        "DATASET_INVALID",
        "dataset.target",
    ),
    (
        "infinite-target",
        _spec(task="regression"),
        _frame(pd.DataFrame({"x": [i % 7 for i in range(40)], "y": [1.0] * 39 + [float("inf")]})),
        [],
        "DATASET_INVALID",
        "dataset.target",
    ),
    (
        "only-constant-features",
        _spec(),
        _frame(pd.DataFrame({"k": [3] * 40, "y": ["a", "b"] * 20})),
        [],
        "DATASET_INVALID",
        "'k'",
    ),
    (
        "too-wide-for-the-budget",
        _spec(budget={"time_s": 10}),
        _frame(_wide(60, 10_000)),
        [],
        "DATASET_INVALID",
        "10,001 columns",
    ),
    (
        "missing-target",
        _spec(dataset={"path": "data.csv", "target": "label"}),
        _good_data,
        [],
        "DATASET_INVALID",
        "dataset.target",
    ),
]


@pytest.mark.parametrize(("spec", "data", "args", "code", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_named_and_leaves_the_store_as_it_was(
    tmp_path: Path, seeded: Path, spec: Any, data: Callable[[Path], None], args: list[str], code: str, names: str
) -> None:
    # A store with something in it (one dataset registered by a good command), copied per case.
    shutil.copy(seeded / "store.db", tmp_path / "store.db")
    shutil.copytree(seeded / "artifacts", tmp_path / "artifacts")
    before = _counts(tmp_path)
    assert before["datasets"] == 1
    path = _write(tmp_path, spec, data)
    result = automl_in(tmp_path, "run", str(path), *args)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert code in out and names in out, out
    assert "Traceback" not in out and len(out) < 20_000  # named, not echoed back whole
    assert _counts(tmp_path) == before
