"""A prediction request is checked against the use case's contract with the lakehouse's own
rules and words: what the lakehouse would quarantine, the endpoint refuses."""

import pandas as pd
import pytest

from lakeloop.deployment.manifests import request_schema
from lakeloop.deployment.seldon.errors import RequestError
from lakeloop.deployment.seldon.transformer import Schema, event_time_of, parse_instances
from lakeloop.lakehouse import rules
from lakeloop.lakehouse.contracts import apply_contract, reasons
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case

UC = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")
SCHEMA = Schema(request_schema(UC))
GOOD = {"application_id": "20261015-044-00017", "applicant_id": "A17",
        "loan_amount": 12000, "loan_term_months": 36, "channel": "online"}


def _refused(changes: dict, status: int) -> str:
    with pytest.raises(RequestError) as err:
        parse_instances({"jsonData": {**GOOD, **changes}}, SCHEMA)
    assert err.value.status_code == status, err.value.message
    return err.value.message


def test_the_documented_request_is_accepted_with_the_event_time_in_utc():
    [instance] = parse_instances({"jsonData": {**GOOD, "application_ts":
                                               "2026-10-15T10:31:00+02:00"}}, SCHEMA)
    assert event_time_of(instance, SCHEMA) == "2026-10-15T08:31:00+00:00"
    assert event_time_of(GOOD, SCHEMA).endswith("+00:00")  # no time: now, in UTC


def test_the_event_key_is_required_because_outcomes_join_on_it():
    request = dict(GOOD)
    del request["application_id"]
    with pytest.raises(RequestError) as err:
        parse_instances({"jsonData": request}, SCHEMA)
    assert "missing field(s): application_id" in err.value.message
    assert "its outcome is joined to the answer on it" in err.value.message


@pytest.mark.parametrize("changes, words", [
    ({"loan_amount": 200}, "loan_amount: below the minimum 500"),
    ({"loan_term_months": 18}, "loan_term_months: not one of the allowed values "
                               "(12, 24, 36, 48, 60)"),
    ({"loan_term_months": 36.5}, "loan_term_months: not a whole number"),
    ({"income": -1.0}, "income: below the minimum 0"),
    ({"credit_utilization": 9.0}, "credit_utilization: above the maximum 1.5"),
    ({"credit_history_months": None}, "credit_history_months: null in a non-nullable column"),
    ({"channel": "fax"}, "channel: not one of the allowed values (branch, online, partner)"),
])
def test_out_of_contract_values_are_422_in_the_lakehouses_words(changes, words):
    assert words in _refused(changes, 422)


def test_wrong_kinds_and_unknown_fields_are_400():
    assert "loan_amount: expected a number" in _refused({"loan_amount": "lots"}, 400)
    assert "application_ts: expected an ISO-8601 time" in _refused(
        {"application_ts": "yesterday"}, 400)
    assert "unexpected field(s): gender" in _refused({"gender": "female"}, 400)


def test_serving_and_the_lakehouse_refuse_the_same_values_with_the_same_words(spark):
    """The same bad values through Spark's quarantine and the request check."""
    bad = [("loan_amount", "200", 200), ("loan_term_months", "18", 18),
           ("loan_term_months", "36.5", 36.5), ("income", "-1", -1.0)]
    source = UC.events
    rows = []
    for column, text, _ in bad:
        row = {c: "1" for c in source.columns}
        row.update({"application_id": f"x-{column}-{text}", "applicant_id": "A1",
                    "application_ts": "2026-10-15T10:00:00", "channel": "online",
                    "gender": "female", "age_band": "26-35", "loan_amount": "1000",
                    "loan_term_months": "36", "income": "1000"})
        row[column] = text
        rows.append(row)
    frame = spark.createDataFrame(pd.DataFrame(rows)).selectExpr(
        "*", "0L as _row", "DATE'2026-10-15' as ds")
    checked = apply_contract(frame, source)
    quarantined = [r["reasons"] for r in
                   checked.where("_bad").select(reasons(source).alias("reasons")).collect()]
    assert len(quarantined) == len(bad)
    for (column, _, value), lakehouse in zip(bad, quarantined, strict=True):
        spec = SCHEMA.contract[column]
        assert rules.check(column, spec, value) == list(lakehouse), column
