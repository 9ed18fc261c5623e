"""Feature plans and preprocessors on real datasets and messy raw rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.errors import DatasetInvalid
from automl.preprocessing import (
    FeaturePlan,
    FrameAdapter,
    build_preprocessor,
    native_categorical_mask,
    plan_features,
)
from automl.profile import DatasetProfile, profile_frame, with_target
from tests.conftest import SHARED_DATASETS

DATASETS = str(SHARED_DATASETS)
STYLES = ("scaled", "tree", "native")


def _load(name: str, target: str, task: str) -> tuple[pd.DataFrame, DatasetProfile]:
    frame = pd.read_csv(f"{DATASETS}/{name}.csv")
    return frame, with_target(profile_frame(frame), frame, target, task)


@pytest.fixture(scope="module")
def titanic() -> tuple[pd.DataFrame, DatasetProfile]:
    return _load("titanic", "survived", "binary")


@pytest.fixture(scope="module")
def penguins() -> tuple[pd.DataFrame, DatasetProfile]:
    return _load("penguins", "species", "multiclass")


def _titanic_plan(profile: DatasetProfile) -> FeaturePlan:
    return plan_features(profile, "survived", [], profile.leaks, None)


def _messy_titanic_rows() -> pd.DataFrame:
    records: list[dict[str, Any]] = [
        {
            "pclass": "2",  # a number as a string
            "sex": "unknown",  # an unseen category
            "age": None,
            "sibsp": "1",
            "parch": 0,
            "fare": "7.25",
            "embarked": None,
            "class": "Fourth",
            "who": "man",
            "adult_male": "yes",
            "deck": np.nan,
            "embark_town": "Atlantis",
            "alone": "F",
            "passenger_note": "an extra column",
        },
        {
            "pclass": 1,
            "sex": "female",
            "age": "not a number",
            "sibsp": 0,
            "parch": "2",
            "fare": 80.0,
            "embarked": "C",
            "class": "First",
            "who": "woman",
            "adult_male": False,
            "deck": "B",
            "embark_town": "Cherbourg",
            "alone": None,
            "passenger_note": None,
        },
    ]
    return pd.DataFrame(records)


def test_plan_drops_target_leak_and_spec_columns(titanic: tuple[pd.DataFrame, DatasetProfile]) -> None:
    _, profile = titanic
    assert "alive" in profile.leaks
    plan = plan_features(profile, "survived", ["deck"], ["alive"], "embark_town")
    names = [name for name, _ in plan.features]
    assert "survived" not in names
    assert plan.dropped == {
        "deck": "dropped by the spec",
        "embark_town": "id column",
        "alive": "restates the target",
    }
    # Original column order, with the profile's kinds.
    assert names == [
        "pclass",
        "sex",
        "age",
        "sibsp",
        "parch",
        "fare",
        "embarked",
        "class",
        "who",
        "adult_male",
        "alone",
    ]
    assert dict(plan.features)["adult_male"] == "boolean"
    assert dict(plan.features)["sex"] == "categorical"


def test_plan_records_profile_reasons() -> None:
    n = 40
    frame = pd.DataFrame(
        {
            "code": [f"c{i:03d}" for i in range(n)],
            "note": ["this is a long free text note number " + str(i) for i in range(n)],
            "flat": ["same"] * n,
            "x": np.arange(n, dtype=float) % 7,
            "y": [0, 1] * (n // 2),
        }
    )
    profile = with_target(profile_frame(frame), frame, "y", "binary")
    plan = plan_features(profile, "y", [], profile.leaks, None)
    assert plan.features == (("x", "numeric"),)
    assert plan.dropped["code"] == "identifier: 100% of values unique"
    assert plan.dropped["note"] == "free text is not modelled"
    assert plan.dropped["flat"] == "constant: a single value"


def test_plan_rejects_unknown_spec_columns(titanic: tuple[pd.DataFrame, DatasetProfile]) -> None:
    _, profile = titanic
    with pytest.raises(DatasetInvalid, match="'cabin'"):
        plan_features(profile, "survived", ["cabin"], [], None)


@pytest.mark.parametrize("style", STYLES)
def test_titanic_preprocessor_handles_raw_rows(style: str, titanic: tuple[pd.DataFrame, DatasetProfile]) -> None:
    frame, profile = titanic
    plan = _titanic_plan(profile)
    prep = build_preprocessor(plan, profile, style)  # type: ignore[arg-type]
    matrix = prep.fit_transform(frame.drop(columns=["survived"]))
    assert matrix.dtype == np.float64
    assert matrix.shape[0] == len(frame)
    out = prep.transform(_messy_titanic_rows())
    assert out.shape == (2, matrix.shape[1])
    names = list(prep.get_feature_names_out())
    assert len(names) == matrix.shape[1]
    if style == "native":
        # Numeric NaNs are left for the model; categoricals come last as codes, unseen -> -1.
        assert np.isnan(out[0, names.index("age")])
        assert out[0, names.index("sex")] == -1
        mask = native_categorical_mask(plan, profile)
        assert mask is not None and len(mask) == matrix.shape[1]
        first_cat = mask.index(True)
        assert all(mask[first_cat:]) and not any(mask[:first_cat])
    else:
        assert np.isfinite(out).all()
    if style == "tree":
        assert out[0, names.index("sex")] == -1
        assert out[0, names.index("pclass")] == 2.0
        assert out[0, names.index("adult_male")] == 1.0
        assert out[1, names.index("adult_male")] == 0.0


@pytest.mark.parametrize("style", STYLES)
def test_penguins_preprocessor(style: str, penguins: tuple[pd.DataFrame, DatasetProfile]) -> None:
    frame, profile = penguins
    plan = plan_features(profile, "species", [], profile.leaks, None)
    prep = build_preprocessor(plan, profile, style)  # type: ignore[arg-type]
    prep.fit(frame.drop(columns=["species"]))
    raw = pd.DataFrame(
        [
            {
                "island": "Unknown Island",
                "bill_length_mm": "41.5",
                "bill_depth_mm": None,
                "flipper_length_mm": 190,
                "body_mass_g": "n/a",
                "sex": None,
                "species": "ignored",
            }
        ]
    )
    out = prep.transform(raw)
    assert out.shape[0] == 1
    if style != "native":
        assert np.isfinite(out).all()


def test_numeric_only_and_categorical_only_plans(penguins: tuple[pd.DataFrame, DatasetProfile]) -> None:
    frame, profile = penguins
    numeric_only = FeaturePlan((("bill_length_mm", "numeric"), ("body_mass_g", "numeric")), {})
    categorical_only = FeaturePlan((("island", "categorical"), ("sex", "categorical")), {})
    for plan in (numeric_only, categorical_only):
        for style in STYLES:
            prep = build_preprocessor(plan, profile, style)  # type: ignore[arg-type]
            assert prep.fit_transform(frame).shape[0] == len(frame)
    assert native_categorical_mask(numeric_only, profile) is None
    assert native_categorical_mask(categorical_only, profile) == [True, True]
    with pytest.raises(DatasetInvalid):
        build_preprocessor(FeaturePlan((), {}), profile, "tree")


def test_adapter_types_and_datetime_parts() -> None:
    schema = (("when", "datetime"), ("n", "numeric"), ("flag", "boolean"), ("colour", "categorical"))
    train = pd.DataFrame(
        {
            "when": ["2024-03-05 14:30", "2023-12-31", None],
            "n": ["1.5", "x", None],
            "flag": ["Yes", "n", "maybe"],
            "colour": ["red", None, 3],
        }
    )
    adapter = FrameAdapter(schema).fit(train)
    out = adapter.transform(train.assign(extra=1))
    assert list(out.columns) == [
        "when__year",
        "when__month",
        "when__day",
        "when__dayofweek",
        "when__hour",
        "n",
        "flag",
        "colour",
    ]
    assert list(adapter.get_feature_names_out()) == list(out.columns)
    parts = ["when__year", "when__month", "when__day", "when__dayofweek", "when__hour"]
    assert out[parts].to_numpy()[0].tolist() == [2024.0, 3.0, 5.0, 1.0, 14.0]  # 2024-03-05 was a Tuesday
    assert np.isnan(out[parts].to_numpy()[2]).all()
    assert out["n"].dtype == np.float64
    np.testing.assert_array_equal(out["n"].to_numpy(), [1.5, np.nan, np.nan])
    np.testing.assert_array_equal(out["flag"].to_numpy(), [1.0, 0.0, np.nan])
    assert out["colour"].dtype == object
    assert out["colour"].tolist()[0::2] == ["red", "3"]
    assert out["colour"].tolist()[1] is np.nan


def test_missing_required_columns_are_named(titanic: tuple[pd.DataFrame, DatasetProfile]) -> None:
    frame, profile = titanic
    prep = build_preprocessor(_titanic_plan(profile), profile, "tree")
    prep.fit(frame)
    with pytest.raises(ValueError, match=r"'age'.*'fare'"):
        prep.transform(frame.drop(columns=["age", "fare"]))
    # JSON records work too.
    records = frame.drop(columns=["survived"]).head(3).to_dict(orient="records")
    assert prep.transform(records).shape[0] == 3


def test_infinite_feature_values_are_taken_as_missing_and_flagged() -> None:
    import numpy as np
    import pandas as pd

    from automl.preprocessing import FrameAdapter
    from automl.profile import profile_frame

    frame = pd.DataFrame({"a": [1.0, np.inf, -np.inf, 2.0], "b": ["1", "inf", "x", "3"]})
    out = FrameAdapter((("a", "numeric"), ("b", "numeric"))).fit(frame).transform(frame)
    assert np.isnan(out.to_numpy()[1:3, 0]).all() and np.isnan(out.to_numpy()[1:3, 1]).all()
    assert out.to_numpy()[0].tolist() == [1.0, 1.0] and np.isfinite(out.to_numpy()[[0, 3]]).all()
    assert any("'a' has 2 infinite value(s)" in w for w in profile_frame(frame).warnings)
