"""Use-case files: the shipped one is valid; mistakes are reported with line numbers."""

from pathlib import Path

import pytest

from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import UseCaseError, load_use_case, load_use_cases, parse_use_case

CREDIT = BUILTIN_USE_CASES / "credit_risk.yaml"


def test_the_shipped_use_case_is_valid():
    uc = load_use_case(CREDIT)
    assert uc.events_name == "applications" and uc.labels_name == "outcomes"
    assert uc.feature_names[-3:] == ("loan_amount", "loan_term_months", "channel")
    assert uc.categorical_features == {"loan_term_months", "channel"}
    assert "gender" not in uc.feature_names
    assert uc.sensitive


def _broken(old: str, new: str) -> str:
    text = CREDIT.read_text()
    assert old in text
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old, new, expected", [
    ("  recall_min: 0.90", "  recall_min: 1.5", "gates.recall_min"),
    ("      income: {type: double", "      income: {type: float", "income.type"),
    ("owner: team:credit-risk", "owner: nobody", "owner"),
    ("  join_key: applicant_id", "  join_key: customer_id", "join_key"),
    ("      - debt_to_income\n", "      - debt_to_income\n      - mystery\n", "mystery"),
])
def test_invalid_use_cases_name_the_field_and_line(old, new, expected):
    text = _broken(old, new)
    with pytest.raises(UseCaseError) as err:
        parse_use_case(text, Path("credit_risk.yaml"))
    message = str(err.value)
    assert expected in message
    assert "line " in message and "line ?" not in message


def test_line_number_points_at_the_offending_key():
    text = _broken("  recall_min: 0.90", "  recall_min: 1.5")
    with pytest.raises(UseCaseError) as err:
        parse_use_case(text, Path("x.yaml"))
    assert f"line {_line_of(text, 'recall_min: 1.5')}:" in str(err.value)


def test_unknown_keys_are_rejected():
    text = _broken("sensitive: true", "sensitive: true\nsensitve_typo: 1")
    with pytest.raises(UseCaseError, match="sensitve_typo"):
        parse_use_case(text, Path("x.yaml"))


def test_protected_attribute_cannot_be_a_feature():
    text = _broken("  request: [loan_amount, loan_term_months, channel]",
                   "  request: [loan_amount, loan_term_months, channel, gender]")
    with pytest.raises(UseCaseError, match="protected attribute 'gender' must not be a "
                                           "model feature"):
        parse_use_case(text, Path("x.yaml"))


def test_a_text_feature_needs_its_categories():
    text = _broken("      channel: {type: string, allowed: [branch, online, partner]}",
                   "      channel: {type: string}")
    with pytest.raises(UseCaseError) as err:
        parse_use_case(text, Path("credit_risk.yaml"))
    [problem] = err.value.problems
    assert problem.where == "features.request[2]"
    assert "feature 'channel' is text: declare its categories" in problem.message


def test_file_name_must_match_and_names_are_unique(tmp_path):
    (tmp_path / "other.yaml").write_text(CREDIT.read_text())
    with pytest.raises(UseCaseError, match="must match the file name"):
        load_use_cases([tmp_path])


def test_bad_yaml_is_reported_with_its_line(tmp_path):
    with pytest.raises(UseCaseError, match="line 2"):
        parse_use_case("name: x\n  bad: [unclosed\n", Path("x.yaml"))


def test_renamed_monitoring_settings_say_what_replaced_them():
    """A use case written for the distance threshold of earlier releases is told where its
    settings went, on the right line."""
    text = _broken("  drift:\n", "  stattest_threshold: 0.15\n  drift:\n")
    with pytest.raises(UseCaseError) as err:
        parse_use_case(text, Path("credit_risk.yaml"))
    [problem] = err.value.problems
    assert problem.where == "monitoring.stattest_threshold"
    assert "replaced by monitoring.drift.alpha" in problem.message
    assert problem.line == _line_of(text, "stattest_threshold")


def test_a_labels_feed_may_skip_days_an_events_feed_may_not():
    uc = load_use_case(CREDIT)
    assert uc.labels.missing_file_means_empty and not uc.events.missing_file_means_empty
    assert uc.label.maturity_days == 10
