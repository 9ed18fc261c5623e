"""Profiling: the column-at-once path for numeric columns agrees with the per-column rules, and
leak detection finds a restated target among many columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.profile import find_leaks, profile_column, profile_frame


def _mixed(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "with_nan": np.where(rng.random(rows) < 0.3, np.nan, rng.normal(size=rows)),
            "with_inf": np.r_[np.inf, rng.normal(size=rows - 1)],
            "counts": pd.array(np.where(rng.random(rows) < 0.2, None, rng.integers(0, 9, rows)), dtype="Int64"),
            "row_id": np.arange(rows),
            "unique_ints": rng.permutation(rows) * 7,
            "flag": rng.integers(0, 2, rows),
            "same": np.ones(rows),
            "empty": np.full(rows, np.nan),
            "yes_no": rng.choice(["yes", "no"], rows),
            "city": rng.choice(["a", "b", "c"], rows),
            "big": np.array([2**60 + i % 5 for i in range(rows)], dtype=np.int64),  # beyond float precision
        }
    )
    return frame


def test_numeric_columns_profiled_at_once_match_the_per_column_rules() -> None:
    frame = _mixed()
    fast = profile_frame(frame)
    for column, name in zip(fast.columns, frame.columns, strict=True):
        slow = profile_column(str(name), frame[name])
        assert (column.name, column.kind, column.dtype, column.distinct, column.reason) == (
            slow.name, slow.kind, slow.dtype, slow.distinct, slow.reason,
        )  # fmt: skip
        assert column.missing_fraction == pytest.approx(slow.missing_fraction)
        assert column.summary.keys() == slow.summary.keys()
        for key, value in column.summary.items():
            if isinstance(value, float):
                assert value == pytest.approx(slow.summary[key], nan_ok=True), (name, key)
            else:
                assert value == slow.summary[key]
    kinds = {c.name: c.kind for c in fast.columns}
    assert kinds["row_id"] == "id" and kinds["same"] == "constant" and kinds["x"] == "numeric"
    assert fast.column("big").distinct == 5
    assert any("'with_inf' has 1 infinite value" in w for w in fast.warnings)


def test_row_numbers_are_identifiers_and_other_increasing_integers_are_features() -> None:
    rng = np.random.default_rng(0)
    rows = 60
    frame = pd.DataFrame(
        {
            "index0": range(rows),  # an exported index
            "row": range(1, rows + 1),
            "customer_id": rng.permutation(rows) + 5000,  # named like one
            "year": range(1950, 1950 + rows),  # a yearly series: a feature
            "time": range(-6000, -6000 + rows),
            "sorted_size": np.cumsum(rng.integers(1, 9, rows)),  # increasing, not by one
            "y": rng.normal(size=rows),
        }
    )
    fast = {c.name: c for c in profile_frame(frame).columns}
    slow = {name: profile_column(name, frame[name]) for name in frame.columns}
    for profiles in (fast, slow):
        assert {n: c.kind for n, c in profiles.items() if c.kind == "id"} == dict.fromkeys(
            ["index0", "row", "customer_id"], "id"
        )
        assert profiles["row"].reason == "row numbers, counting up by one from 0 or 1"
        assert profiles["customer_id"].reason == "unique integers named like an identifier"
        assert {profiles[n].kind for n in ("year", "time", "sorted_size")} == {"numeric"}


def test_a_restated_target_is_found_among_thousands_of_columns() -> None:
    rng = np.random.default_rng(0)
    rows, width = 80, 3000
    frame = pd.DataFrame(rng.normal(size=(rows, width)), columns=[f"c{i}" for i in range(width)])
    frame["y"] = rng.choice(["cat", "dog"], rows)
    frame["restated"] = frame["y"].map({"cat": 0, "dog": 1})
    frame["coded"] = frame["y"].map({"cat": "C", "dog": "D"})
    frame.loc[3, "coded"] = None  # a missing value does not hide the mapping
    assert find_leaks(frame, "y", "binary") == ["restated", "coded"]
    frame["amount"] = rng.normal(size=rows)
    frame["amount_cents"] = frame["amount"] * 100
    assert find_leaks(frame, "amount", "regression") == ["amount_cents"]


def _restates_as_text(frame: pd.DataFrame, name: str, target: str) -> bool:
    """The one-to-one rule read plainly: distinct (value, class) pairs as text, rows with both."""
    both = pd.DataFrame({"x": frame[name], "y": frame[target]}).dropna()
    pairs = both.astype(str).drop_duplicates()
    return len(pairs) == pairs["x"].nunique() == pairs["y"].nunique() >= 2


@pytest.mark.parametrize("seed", range(6))
def test_the_one_to_one_leak_rule_on_codes_finds_what_pairs_of_texts_find(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = 400
    y = rng.choice(["a", "b", "c"], rows)
    frame = pd.DataFrame({"y": y})
    frame.loc[rng.random(rows) < 0.02, "y"] = None
    mapped = pd.Series(y).map({"a": 1, "b": 2, "c": 3})
    frame["ints"] = mapped
    frame["floats"] = mapped * 0.5
    frame["words"] = pd.Series(y).map({"a": "x", "b": "y", "c": "z"})
    frame["holes"] = frame["floats"].where(rng.random(rows) > 0.05)
    frame["merged"] = pd.Series(y).map({"a": 1, "b": 1, "c": 2})  # two classes on one value
    frame["split"] = mapped.where(rng.random(rows) > 0.01, 4)  # one class on two values, now and then
    frame["flags"] = rng.integers(0, 2, rows)
    frame["mixed"] = pd.Series(y).map({"a": 1, "b": "1.5", "c": 2.0}).astype(object)
    frame["bools"] = pd.Series(y) == "a"
    expected = [n for n in frame.columns if n != "y" and _restates_as_text(frame, n, "y")]
    assert find_leaks(frame, "y", "multiclass") == expected
    assert {"ints", "floats", "words", "mixed"} <= set(expected) and not {"merged", "flags", "bools"} & set(expected)


def test_quantiles_read_off_the_sorted_columns_match_numpys() -> None:
    from automl.profile import _sorted_quantiles

    rng = np.random.default_rng(3)
    for rows in (1, 2, 7, 500):
        values = np.round(rng.normal(size=(rows, 6)) * 10, 1)  # ties
        values[rng.random(values.shape) < 0.3] = np.nan
        values[:, 4] = np.nan  # a column with no value
        values[0, 5], values[-1, 5] = np.inf, -np.inf
        ordered = np.sort(values, axis=0)
        present = (~np.isnan(values)).sum(axis=0)
        got = _sorted_quantiles(ordered, present, (0.0, 0.25, 0.5, 0.75, 1.0))
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            want = np.nanquantile(values, [0.0, 0.25, 0.5, 0.75, 1.0], axis=0)
        np.testing.assert_allclose(got[:, :5], want[:, :5], rtol=1e-12, equal_nan=True)
        assert np.isnan(got[:, 4]).all()
        assert got[0, 5] == np.nanmin(values[:, 5]) and got[-1, 5] == np.nanmax(values[:, 5])
