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


def test_a_training_matrix_laid_out_by_column_holds_the_same_values_and_model():
    import xgboost as xgb

    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"income": rng.normal(size=2000), "home": rng.choice(
        ["own", "rent", "mortgage", None], size=2000), "term": rng.choice([12, 36], 2000)})
    frame.loc[::7, "income"] = None
    rows, columns = ENCODING.encode_frame(frame), ENCODING.encode_frame(frame, order="F")
    assert rows.flags.c_contiguous and columns.flags.f_contiguous
    np.testing.assert_array_equal(rows, columns)
    label = (frame["term"] == 36).to_numpy() ^ (rng.random(2000) < 0.2)
    models = [xgb.train({"tree_method": "hist", "max_depth": 3, "seed": 1, "nthread": 2,
                         "objective": "binary:logistic"}, xgb.DMatrix(m, label=label), 20)
              for m in (rows, columns)]
    assert models[0].save_raw("ubj") == models[1].save_raw("ubj")


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


TERM = Categorical("term", ("12", "36", "60", "other"), "other")
MIXED = Encoding(("home", "term"), {"home": Categorical("home", ("own", "rent", "true", "1",
                                                                  "other"), "other"),
                                    "term": TERM})


def _columns(rng, rows: int) -> dict[str, pd.Series]:
    """The same categories typed every way a source may type them."""
    homes = np.array(["own", "rent", "boat", None, "true", "1"], dtype=object)
    terms = np.array([12, 36, 60, 7, np.nan])
    mixed = np.array([True, 1, "1", 1.0, "own", None, float("nan"), "rent", False, 0],
                     dtype=object)
    return {
        "text": pd.Series(homes[rng.integers(0, len(homes), rows)], dtype=object),
        "arrow text": pd.Series(homes[rng.integers(0, len(homes), rows)],
                                dtype="string[pyarrow]"),
        "mixed objects": pd.Series(mixed[rng.integers(0, len(mixed), rows)], dtype=object),
        "bools": pd.Series(rng.integers(0, 2, rows).astype(bool)),
        "all missing": pd.Series([None] * rows, dtype=object),
        "floats": pd.Series(terms[rng.integers(0, len(terms), rows)]),
    }


@pytest.mark.parametrize("rows", [0, 1, 40, 5_000, 200_000])
def test_a_frame_encodes_as_its_rows_do_whatever_the_column_types(rows):
    rng = np.random.default_rng(rows)
    terms = pd.Series(rng.choice([12, 36, 60, 7], rows), dtype="int64")
    for name, home in _columns(rng, rows).items():
        frame = pd.DataFrame({"home": home, "term": terms})
        from_frame = MIXED.encode_frame(frame)
        rows_in = [[None if v is pd.NA else v for v in r] for r in
                   zip(frame["home"].astype(object).tolist(), frame["term"].tolist(),
                       strict=True)]
        np.testing.assert_array_equal(from_frame, MIXED.encode_rows(rows_in), err_msg=name)
        assert from_frame.shape == (rows, 9)


def test_the_first_unknown_category_in_the_column_is_the_one_named():
    closed = Encoding(("home",), {"home": HOME})
    for home in (pd.Series(["own", None, "boat", "rent", "yacht", "boat"]),
                 pd.Series(["own", None, "boat", "rent", "yacht", "boat"], dtype="string"),
                 pd.Series(["own", None, "boat", 1, "yacht"], dtype=object)):
        with pytest.raises(UnknownCategory) as err:
            closed.encode_frame(pd.DataFrame({"home": home}))
        assert err.value.value == "boat"
