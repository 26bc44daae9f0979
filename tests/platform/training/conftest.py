"""Fixtures of the training library's tests."""

import pandas as pd
import pytest

from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.training.data import EVENT_TIMESTAMP, LABEL
from lakeloop.usecase import load_use_case
from tests.support.demo_data import DemoSpec, generate

UC = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> pd.DataFrame:
    """What a training set holds for the demo's use case: features, label, event time and
    the protected attributes, from the demo's generated files (30 days, no drift)."""
    landing = tmp_path_factory.mktemp("landing")
    spec = DemoSpec(days=30, rows_per_day=300, drift_day=None, seed=11)
    generate(landing, spec)
    apps = pd.concat(pd.read_csv(p) for p in sorted(
        (landing / "credit_risk" / "applications").glob("*.csv")))
    outcomes = pd.concat(pd.read_csv(p) for p in sorted(
        (landing / "credit_risk" / "outcomes").glob("*.csv")))
    rows = apps.merge(outcomes, on="application_id")
    rows["debt_to_income"] = rows["existing_debt"] / rows["income"].clip(lower=1.0)
    rows[EVENT_TIMESTAMP] = pd.to_datetime(rows["application_ts"])
    rows[LABEL] = rows["defaulted"].astype(int)
    return rows[[*UC.feature_names, LABEL, EVENT_TIMESTAMP, *UC.protected_attributes]]
