"""Categorical features become one-hot columns, the same way for a training frame and for a
request's rows; unknown categories are refused or go to ``other``."""

import numpy as np
import pandas as pd
import pytest

from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.training.encoding import Categorical, Encoding, UnknownCategory, category_text
from lakeloop.usecase import parse_use_case

HOME = Categorical("home", ("own", "rent", "mortgage"))
ENCODING = Encoding(("income", "home", "term"), {"home": HOME})


def test_frames_and_request_rows_encode_identically():
    frame = pd.DataFrame({"income": [50000.0, None, 12.5], "home": ["rent", "own", None],
                          "term": [36, 12, 60]})
    from_frame = ENCODING.encode_frame(frame)
    from_rows = ENCODING.encode_rows([[50000.0, "rent", 36], [None, "own", 12],
                                      [12.5, None, 60]])
    np.testing.assert_array_equal(from_frame, from_rows)
    assert ENCODING.columns == ["income", "home=own", "home=rent", "home=mortgage", "term"]
    assert from_frame.dtype == np.float32
    assert np.isnan(from_frame[1, 0])  # a missing number stays missing for XGBoost
    assert list(from_frame[2, 1:4]) == [0, 0, 0]  # a missing category: no column set
    assert ENCODING.feature_of_columns() == ["income", "home", "home", "home", "term"]


def test_unknown_categories_are_refused_or_go_to_other():
    with pytest.raises(UnknownCategory, match="home: 'boat' is not one of the categories "
                                              r"\(own, rent, mortgage\)"):
        ENCODING.encode_rows([[1.0, "boat", 12]])
    other = Encoding(("home",), {"home": Categorical("home", ("own", "rent", "other"),
                                                     "other")})
    assert list(other.encode_rows([["boat"]])[0]) == [0, 0, 1]


def test_the_encoding_round_trips_and_categories_keep_one_spelling():
    assert Encoding.from_json(ENCODING.to_json(), []) == ENCODING
    assert Encoding.from_json(None, ["a", "b"]).columns == ["a", "b"]
    assert category_text(36) == category_text(36.0) == category_text("36") == "36"
    assert category_text(True) == "true" and category_text(float("nan")) is None


def test_learnt_categories_keep_the_frequent_ones_and_pool_the_rest():
    text = (BUILTIN_USE_CASES / "credit_risk.yaml").read_text().replace(
        "      channel: {type: string, allowed: [branch, online, partner]}",
        "      channel: {type: string, min_frequency: 0.05}").replace(
        "  request: [loan_amount, loan_term_months]",
        "  request: [loan_amount, loan_term_months, channel]")
    use_case = parse_use_case(text, BUILTIN_USE_CASES / "credit_risk.yaml")
    frame = pd.DataFrame({f: [0.0] * 100 for f in use_case.feature_names})
    frame["channel"] = ["online"] * 60 + ["branch"] * 37 + ["fax"] * 3
    encoding = Encoding.for_use_case(use_case, frame)
    assert encoding.categorical["channel"].levels == ("branch", "online", "other")
    assert encoding.columns[-3:] == ["channel=branch", "channel=online", "channel=other"]
    assert list(encoding.encode_rows([[0.0] * 9 + ["telegram"]])[0][-3:]) == [0, 0, 1]
