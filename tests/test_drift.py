"""Drift tests against a version's reference, on real data sets: a shifted population is flagged,
independent samples of the reference population are flagged no more often than chance allows, and
the quantile-based Kolmogorov-Smirnov test agrees with scipy's on the raw rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from automl.monitoring.anomalies import feature_anomalies, outlier_rows
from automl.monitoring.drift import DriftOptions, feature_drift, ks_test
from automl.monitoring.reference import build_reference, fit_outlier_model, numeric_reference
from tests.conftest import SHARED_DATASETS

DIAMONDS_SCHEMA = [
    {"name": "carat", "kind": "numeric"},
    {"name": "cut", "kind": "categorical"},
    {"name": "color", "kind": "categorical"},
    {"name": "clarity", "kind": "categorical"},
    {"name": "depth", "kind": "numeric"},
    {"name": "table", "kind": "numeric"},
    {"name": "x", "kind": "numeric"},
    {"name": "y", "kind": "numeric"},
    {"name": "z", "kind": "numeric"},
]


@pytest.fixture(scope="module")
def diamonds() -> pd.DataFrame:
    return pd.read_csv(SHARED_DATASETS / "diamonds.csv")


@pytest.fixture(scope="module")
def halves(diamonds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    shuffled = diamonds.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return shuffled.iloc[: len(shuffled) // 2], shuffled.iloc[len(shuffled) // 2 :].reset_index(drop=True)


def _drifted(reference: dict, frame: pd.DataFrame, options: DriftOptions | None = None) -> list[str]:
    options = options or DriftOptions()
    return [
        name for name, ref in reference["features"].items() if feature_drift(name, ref, frame[name], options).drifted
    ]


def test_independent_samples_are_flagged_at_about_the_test_level(halves: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """40 samples of 300 rows (p-value tests) from the other half of the same population: the share of
    feature tests that flag drift stays near the 5 % level (here at most 10 %, 360 tests)."""
    train, other = halves
    reference = build_reference(train, DIAMONDS_SCHEMA, None, "regression", None)
    rng = np.random.default_rng(1)
    flags = [len(_drifted(reference, other.iloc[rng.choice(len(other), 300, replace=False)])) for _ in range(40)]
    rate = sum(flags) / (40 * len(DIAMONDS_SCHEMA))
    assert rate <= 0.10, flags


def test_large_independent_samples_show_no_drift(halves: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Above 1,000 rows the effect-size tests (Wasserstein, Jensen-Shannon) see no drift in the
    same population however many rows, and PSI stays in its stable band."""
    train, other = halves
    reference = build_reference(train, DIAMONDS_SCHEMA, None, "regression", None)
    options = DriftOptions()
    results = [feature_drift(n, r, other[n], options) for n, r in reference["features"].items()]
    assert {r.method for r in results} == {"wasserstein", "jensenshannon"}
    assert [r.name for r in results if r.drifted] == []
    assert all(r.psi is not None and r.psi < 0.1 for r in results)


def test_a_shifted_population_is_flagged(diamonds: pd.DataFrame) -> None:
    """Reference: the small stones; current: the large ones. Carat (the shifted feature) and its
    close relatives drift, at both sample sizes; the cut, which barely moves with size, is
    judged by the same tests."""
    small, large = diamonds[diamonds.carat < 0.7], diamonds[diamonds.carat >= 1.0].reset_index(drop=True)
    reference = build_reference(small, DIAMONDS_SCHEMA, None, "regression", None)
    for rows in (200, 5000):
        drifted = _drifted(reference, large.sample(rows, random_state=0))
        assert {"carat", "x", "y", "z"} <= set(drifted), (rows, drifted)


def test_psi_can_be_chosen_and_has_the_usual_bands(halves: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, other = halves
    reference = build_reference(train, DIAMONDS_SCHEMA, None, "regression", None)
    options = DriftOptions(numeric_test="psi", categorical_test="psi")
    same = feature_drift("carat", reference["features"]["carat"], other["carat"], options)
    assert same.method == "psi" and same.statistic == same.psi and not same.drifted
    shifted = feature_drift("carat", reference["features"]["carat"], other["carat"] * 1.5, options)
    assert shifted.drifted and shifted.to_dict()["psi_band"] == "significant"


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.2])
def test_quantile_ks_agrees_with_scipy_on_the_raw_rows(halves: tuple[pd.DataFrame, pd.DataFrame], shift: float) -> None:
    train, other = halves
    ref_values = train["depth"].to_numpy(dtype=float)
    current = other["depth"].to_numpy(dtype=float)[:400] + shift * ref_values.std()
    p_value, d = ks_test(numeric_reference(ref_values), current)
    exact = ks_2samp(ref_values, current, method="asymp")
    assert abs(d - exact.statistic) < 0.02
    assert (p_value < 0.05) == (exact.pvalue < 0.05)


def test_unseen_rare_values_do_not_alone_make_drift(halves: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """One row with a category training never had, among 300 ordinary rows, is an anomaly, not drift."""
    train, other = halves
    reference = build_reference(train, DIAMONDS_SCHEMA, None, "regression", None)
    sample = other.iloc[:300].copy()
    sample.loc[0, "cut"] = "Astonishing"
    result = feature_drift("cut", reference["features"]["cut"], sample["cut"], DriftOptions())
    assert not result.drifted
    anomalies, flagged = feature_anomalies(sample, reference, list(range(len(sample))))
    unseen = [a for a in anomalies if a["type"] == "unseen_category"]
    assert unseen == [
        {
            "feature": "cut", "type": "unseen_category", "count": 1, "rate": 1 / 300,
            "categories": ["Astonishing"], "examples": [{"row": 0, "value": "Astonishing"}],
        }
    ]  # fmt: skip
    assert flagged[0]


def test_anomalies_are_counted_on_out_of_range_values_and_missing_jumps(
    halves: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, other = halves
    reference = build_reference(train, DIAMONDS_SCHEMA, None, "regression", None)
    sample = other.iloc[:200].copy()
    sample.loc[[3, 7, 11], "carat"] = [99.0, -1.0, 1e6]
    sample.loc[:59, "depth"] = np.nan  # 30 % missing where training had none
    anomalies, flagged = feature_anomalies(sample, reference, [f"r{i}" for i in range(len(sample))])
    by_type = {(a["feature"], a["type"]): a for a in anomalies}
    out = by_type[("carat", "out_of_range")]
    assert out["count"] == 3 and [e["row"] for e in out["examples"]] == ["r3", "r7", "r11"]
    assert by_type[("depth", "missing_rate_jump")]["count"] == 60
    assert flagged.sum() == 3


def test_the_outlier_model_marks_about_one_percent_of_its_population_and_most_strange_rows(
    halves: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, other = halves
    model = fit_outlier_model(train, DIAMONDS_SCHEMA, seed=0)
    ordinary = outlier_rows(model, other.iloc[:5000], list(range(5000)))
    assert 0.002 <= ordinary["rate"] <= 0.03
    strange = other.iloc[:50].copy()
    strange["carat"], strange["x"], strange["depth"], strange["table"] = 12.0, 30.0, 95.0, 10.0  # no stone is
    assert outlier_rows(model, strange, list(range(50)))["rate"] >= 0.9
