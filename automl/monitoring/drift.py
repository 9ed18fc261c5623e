"""Drift tests of one feature: new values against the version's training reference.

The test is chosen by kind and sample size, with the defaults of the drift tools users know
(Evidently's data-drift preset): up to 1,000 rows, a two-sample Kolmogorov-Smirnov test for
numerics and a chi-square test for categories (drift when p < 0.05); above 1,000 rows, where any
tiny shift is "significant", an effect size: the Wasserstein distance in units of the reference's
standard deviation for numerics and the Jensen-Shannon distance for categories (drift when >= 0.1).
The population stability index is reported beside every test, with the banking industry's bands
(< 0.1 stable, 0.1-0.25 moderate shift, >= 0.25 significant shift), and can be chosen as the test.

The reference keeps quantiles, not rows, so the Kolmogorov-Smirnov statistic is taken against the
reference's piecewise-linear distribution function, with the p-value of the two-sample test for
the reference's row count (``scipy.stats.kstwo`` at ``n*m/(n+m)``, as ``ks_2samp`` computes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl.monitoring.reference import QUANTILE_LEVELS, category_values, drift_kind, number_key, numeric_values

SMALL_SAMPLE = 1000
METHODS = ("ks", "wasserstein", "psi", "chisquare", "jensenshannon")
DEFAULT_THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.2}
P_VALUE_TESTS = ("ks", "chisquare")  # drift when the statistic (a p-value) is BELOW the threshold
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25
MIN_EXPECTED = 5.0  # Cochran's rule for the chi-square test
EPS = 1e-4  # the frequency given to an empty bin in PSI and chi-square


@dataclass(frozen=True)
class DriftOptions:
    """Which test and threshold to use (``auto``: by kind and sample size, as above)."""

    numeric_test: str = "auto"
    categorical_test: str = "auto"
    threshold: float | None = None  # overrides the chosen test's default threshold


@dataclass
class FeatureDrift:
    name: str
    kind: str
    method: str
    statistic: float | None
    threshold: float
    drifted: bool
    psi: float | None
    rows: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "drift_when": "statistic < threshold" if self.method in P_VALUE_TESTS else "statistic >= threshold",
            "psi": self.psi,
            "psi_band": psi_band(self.psi),
            "rows": self.rows,
            **self.details,
        }


def psi_band(psi: float | None) -> str | None:
    if psi is None:
        return None
    return "stable" if psi < PSI_MODERATE else "moderate" if psi < PSI_SIGNIFICANT else "significant"


def choose_method(kind: str, rows: int, options: DriftOptions) -> str:
    if drift_kind(kind) == "categorical" or kind == "discrete":
        chosen = options.categorical_test
        return chosen if chosen != "auto" else ("chisquare" if rows <= SMALL_SAMPLE else "jensenshannon")
    chosen = options.numeric_test
    return chosen if chosen != "auto" else ("ks" if rows <= SMALL_SAMPLE else "wasserstein")


# -- numeric ------------------------------------------------------------------------------------
def reference_cdf(quantiles: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The reference's distribution function at ``x``: linear between quantiles; at a value many
    quantiles share (a point mass) it takes the highest of their levels (right-continuous)."""
    right = np.searchsorted(quantiles, x, side="right")
    left = np.searchsorted(quantiles, x, side="left")
    inside = np.interp(x, quantiles, QUANTILE_LEVELS)
    tied = right > left
    at_tie = QUANTILE_LEVELS[np.clip(right - 1, 0, len(QUANTILE_LEVELS) - 1)]
    out = np.where(tied, at_tie, inside)
    return np.where(x < quantiles[0], 0.0, np.where(x >= quantiles[-1], 1.0, out))


def ks_test(ref: dict[str, Any], current: np.ndarray) -> tuple[float, float]:
    """(p-value, D) of the two-sample Kolmogorov-Smirnov test against the reference."""
    from scipy.stats import kstwo

    quantiles = np.asarray(ref["quantiles"], dtype=float)
    cur = np.sort(current)
    m = len(cur)
    points = np.unique(np.concatenate([cur, quantiles]))
    f_cur = np.searchsorted(cur, points, side="right") / m
    f_cur_before = np.searchsorted(cur, points, side="left") / m
    f_ref = reference_cdf(quantiles, points)
    f_ref_before = reference_cdf(quantiles, np.nextafter(points, -np.inf))
    d = float(max(np.max(np.abs(f_cur - f_ref)), np.max(np.abs(f_cur_before - f_ref_before))))
    n = int(ref["count"])
    effective = max(round(n * m / (n + m)), 1)
    return float(kstwo.sf(d, effective)), d


def wasserstein(ref: dict[str, Any], current: np.ndarray) -> float:
    """The Wasserstein-1 distance between the two distributions (the mean gap between their
    quantile functions), in units of the reference's standard deviation. The gap is averaged over
    the 1st to 99th percentiles: one extreme row (a typo of 58.9 for 5.89) would otherwise decide it."""
    inner = slice(1, -1)
    reference = np.asarray(ref["quantiles"], dtype=float)[inner]
    gap = np.abs(np.quantile(current, QUANTILE_LEVELS[inner]) - reference)
    distance = float(gap.mean())
    scale = float(ref.get("std") or 0.0)
    return distance / scale if scale > 0 else distance


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(expected, EPS, None)
    a = np.clip(actual, EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(ref: dict[str, Any], current: np.ndarray) -> float:
    edges = np.asarray(ref["bin_edges"], dtype=float)
    counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return _psi(np.asarray(ref["bin_frequencies"], dtype=float), counts / counts.sum())


# -- categorical --------------------------------------------------------------------------------
def aligned_frequencies(
    ref_freq: dict[str, float], current: pd.Series, ref_rows: int = 0
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Categories in reference order plus one bin for values the reference never had: names, the
    reference's probabilities and the current counts. With the reference's row count the
    probabilities carry half a pseudo-count per bin (Jeffreys), so a value too rare to have been
    seen in training is unlikely, not impossible."""
    counts = current.value_counts()
    names = list(ref_freq)
    seen = set(names)
    unseen = int(sum(v for k, v in counts.items() if k not in seen))
    expected = np.asarray([ref_freq[k] for k in names] + [0.0])
    if ref_rows > 0:
        expected = (expected * ref_rows + 0.5) / (ref_rows + 0.5 * len(expected))
    actual = np.asarray([int(counts.get(k, 0)) for k in names] + [unseen], dtype=float)
    return [*names, "(unseen)"], expected / max(expected.sum(), EPS), actual


def chi_square(ref_freq: dict[str, float], current: pd.Series, ref_rows: int = 0) -> tuple[float, float]:
    """(p-value, statistic) of Pearson's goodness-of-fit test of the new counts. Bins expected to
    hold fewer than 5 rows are pooled (Cochran's rule), with the least frequent other bin when the
    pool alone is still that small, so a few rare or unseen values are anomalies, not drift."""
    from scipy.stats import chi2

    _, expected, actual = aligned_frequencies(ref_freq, current, ref_rows)
    m = actual.sum()
    exp_counts = expected * m
    small = exp_counts < MIN_EXPECTED
    if small.any() and (~small).any():
        pooled_exp, pooled_act = exp_counts[small].sum(), actual[small].sum()
        exp_counts, actual = exp_counts[~small], actual[~small]
        if pooled_exp < MIN_EXPECTED:
            least = int(np.argmin(exp_counts))
            exp_counts[least] += pooled_exp
            actual[least] += pooled_act
        else:
            exp_counts, actual = np.append(exp_counts, pooled_exp), np.append(actual, pooled_act)
    exp_counts = np.clip(exp_counts, EPS, None)
    statistic = float(np.sum((actual - exp_counts) ** 2 / exp_counts))
    dof = max(len(exp_counts) - 1, 1)
    return float(chi2.sf(statistic, dof)), statistic


def jensen_shannon(ref_freq: dict[str, float], current: pd.Series, ref_rows: int = 0) -> float:
    from scipy.spatial.distance import jensenshannon

    _, expected, actual = aligned_frequencies(ref_freq, current, ref_rows)
    return float(jensenshannon(expected, actual / max(actual.sum(), 1.0)))


def categorical_psi(ref_freq: dict[str, float], current: pd.Series, ref_rows: int = 0) -> float:
    _, expected, actual = aligned_frequencies(ref_freq, current, ref_rows)
    return _psi(expected, actual / max(actual.sum(), 1.0))


# -- one feature --------------------------------------------------------------------------------
def feature_drift(name: str, ref: dict[str, Any], values: pd.Series, options: DriftOptions) -> FeatureDrift:
    """Drift of one feature's new ``values`` (raw, as served) against its reference ``ref``."""
    kind = str(ref["kind"])
    if drift_kind(kind) == "numeric":
        numbers = numeric_values(values, kind)
        present = numbers[np.isfinite(numbers)]
        discrete = "frequencies" in ref
        method = choose_method("discrete" if discrete else kind, len(present), options)
        if method in ("chisquare", "jensenshannon") and not discrete:
            method = "ks" if len(present) <= SMALL_SAMPLE else "wasserstein"  # no frequencies kept
        if method in ("ks", "wasserstein") and "quantiles" not in ref:
            method = "psi"
        labels = pd.Series([number_key(v) for v in present], dtype=object)
    else:
        labels = category_values(values).dropna()
        present = np.asarray(labels)
        method = choose_method(kind, len(labels), options)
        if method not in ("chisquare", "jensenshannon", "psi"):
            method = "chisquare" if len(labels) <= SMALL_SAMPLE else "jensenshannon"
    threshold = options.threshold if options.threshold is not None else DEFAULT_THRESHOLDS[method]
    if len(present) == 0 or not ref.get("count"):
        return FeatureDrift(name, kind, method, None, threshold, False, None, 0, {"note": "no values to compare"})
    details: dict[str, Any] = {}
    n_ref = int(ref["count"])
    if method == "ks":
        statistic, d = ks_test(ref, present)
        details["ks_d"] = d
    elif method == "wasserstein":
        statistic = wasserstein(ref, present)
    elif method == "chisquare":
        statistic, details["chi2"] = chi_square(ref["frequencies"], labels, n_ref)
    elif method == "jensenshannon":
        statistic = jensen_shannon(ref["frequencies"], labels, n_ref)
    else:
        statistic = None  # PSI itself, below
    if "bin_edges" in ref and drift_kind(kind) == "numeric":
        psi: float | None = numeric_psi(ref, present)
    elif "frequencies" in ref:
        psi = categorical_psi(ref["frequencies"], labels, n_ref)
    else:
        psi = None
    if method == "psi":
        statistic = psi
    drifted = statistic is not None and (statistic < threshold if method in P_VALUE_TESTS else statistic >= threshold)
    return FeatureDrift(name, kind, method, statistic, threshold, bool(drifted), psi, len(present), details)
