"""Approvals that can be trusted, against a real MLflow registry (SQLite): only listed
approvers decide, enough distinct ones must approve, the trainer is never enough alone, and a
decision edited in MLflow afterwards is refused by promotion."""

from __future__ import annotations

import json
import re

import pytest

from lakeloop.deployment import approvals, promotion
from lakeloop.tracking import CHALLENGER, MlflowResource
from lakeloop.usecase import load_use_case
from tests.conftest import free_port_pair, write_use_case

KEY = b"k" * 32
ADA, GRACE, LINUS = "Ada (model risk)", "Grace (credit policy)", "Linus (ops)"


@pytest.fixture
def registry(tmp_path):
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    return mlflow, mlflow.client()


def use_case(tmp_path, approvers: list[str], required: int):
    path = write_use_case(tmp_path / "uc", free_port_pair(), **{
        r"^  approvers: .*$": f"  approvers: {json.dumps(approvers)}",
        r"^  required: \d+$": f"  required: {required}"})
    return load_use_case(path)


def challenger(client, name: str, trained_by: str) -> str:
    """A registered version that passed its gates, as the registry's challenger."""
    try:
        client.create_registered_model(name)
    except Exception:  # already there: a second version
        pass
    version = str(client.create_model_version(name, source="/nonexistent/model").version)
    client.set_model_version_tag(name, version, "gates", "passed")
    client.set_model_version_tag(name, version, approvals.TRAINED_BY, trained_by)
    client.set_registered_model_alias(name, CHALLENGER, version)
    return version


def decide(client, uc, version, by, decision=approvals.APPROVED, environ=None):
    return approvals.record(client, uc, version, decision, by, "model card reviewed",
                            key=KEY, environ=environ or {})


def refused(mlflow, uc, version) -> str:
    with pytest.raises(promotion.PromotionError) as caught:
        promotion.check_promotable(mlflow, uc, version)
    return str(caught.value)


@pytest.fixture(autouse=True)
def signing_key(monkeypatch):
    monkeypatch.setenv(approvals.KEY_ENV, KEY.decode())


def test_an_approver_not_in_the_list_is_refused(registry, tmp_path):
    mlflow, client = registry
    uc = use_case(tmp_path, [ADA, GRACE], 1)
    version = challenger(client, uc.name, "trainer")
    with pytest.raises(approvals.ApprovalError, match="'Mallory' is not an approver"):
        decide(client, uc, version, "Mallory")
    assert approvals.records(client.get_model_version(uc.name, version).tags) == []
    assert "needs 1 distinct approvals and v1 has none" in refused(mlflow, uc, version)


def test_two_required_means_two_distinct_people(registry, tmp_path):
    mlflow, client = registry
    uc = use_case(tmp_path, [ADA, GRACE, LINUS], 2)
    version = challenger(client, uc.name, "trainer")
    assert decide(client, uc, version, ADA).status == approvals.PENDING
    assert f"has 1 ({ADA})" in refused(mlflow, uc, version)
    with pytest.raises(approvals.ApprovalError, match="does not count twice"):
        decide(client, uc, version, ADA)
    assert decide(client, uc, version, GRACE).status == approvals.APPROVED
    promotion.check_promotable(mlflow, uc, version)  # raises if refused


def test_the_trainer_approving_alone_is_refused(registry, tmp_path):
    mlflow, client = registry
    uc = use_case(tmp_path, [ADA, GRACE], 1)
    version = challenger(client, uc.name, trained_by=ADA)
    assert decide(client, uc, version, ADA).status == approvals.PENDING
    assert f"{ADA} trained v{version} and is its only approver" in refused(mlflow, uc, version)
    assert decide(client, uc, version, GRACE).status == approvals.APPROVED
    promotion.check_promotable(mlflow, uc, version)


@pytest.mark.parametrize("field", ["by", "decision", "reason", "at", "version"])
def test_a_decision_edited_in_mlflow_afterwards_is_refused(registry, tmp_path, field):
    mlflow, client = registry
    uc = use_case(tmp_path, [ADA, GRACE], 1)
    version = challenger(client, uc.name, "trainer")
    decide(client, uc, version, ADA if field != "decision" else GRACE,
           decision=approvals.REJECTED if field == "decision" else approvals.APPROVED)
    if field != "decision":
        promotion.check_promotable(mlflow, uc, version)  # genuine: promotable
    tags = client.get_model_version(uc.name, version).tags
    [record] = json.loads(tags[approvals.RECORDS])
    record[field] = {"by": GRACE, "decision": approvals.APPROVED, "reason": "edited",
                     "at": "2026-01-01T00:00:00+00:00", "version": "7"}[field]
    client.set_model_version_tag(uc.name, version, approvals.RECORDS, json.dumps([record]))
    client.set_model_version_tag(uc.name, version, approvals.STATUS, approvals.APPROVED)
    message = refused(mlflow, uc, version)
    assert re.search(r"does not match its integrity check: it was changed after it was "
                     r"recorded", message), message


def test_a_record_signed_with_another_key_is_refused(registry, tmp_path, monkeypatch):
    mlflow, client = registry
    uc = use_case(tmp_path, [ADA], 1)
    version = challenger(client, uc.name, "trainer")
    decide(client, uc, version, ADA)
    monkeypatch.setenv(approvals.KEY_ENV, "another key of thirty-two bytes!")
    assert "does not match its integrity check" in refused(mlflow, uc, version)


def test_without_a_key_nothing_is_recorded_and_the_message_says_how(registry, tmp_path,
                                                                     monkeypatch):
    _, client = registry
    uc = use_case(tmp_path, [ADA], 1)
    version = challenger(client, uc.name, "trainer")
    monkeypatch.delenv(approvals.KEY_ENV)
    with pytest.raises(approvals.ApprovalError, match=f"{approvals.KEY_ENV} is not set"):
        approvals.record(client, uc, version, approvals.APPROVED, ADA, "ok", environ={})
    assert approvals.RECORDS not in client.get_model_version(uc.name, version).tags


def test_the_runs_identity_decides_and_by_cannot_impersonate(registry, tmp_path):
    _, client = registry
    uc = use_case(tmp_path, [ADA, GRACE], 1)
    version = challenger(client, uc.name, "trainer")
    pod = {approvals.USER_ENV: GRACE}
    with pytest.raises(approvals.ApprovalError, match="cannot decide on someone else"):
        decide(client, uc, version, ADA, environ=pod)
    assert decide(client, uc, version, "", environ=pod).by == GRACE


def test_a_rejection_blocks_promotion_whatever_else_was_approved(registry, tmp_path):
    mlflow, client = registry
    uc = use_case(tmp_path, [ADA, GRACE, LINUS], 2)
    version = challenger(client, uc.name, "trainer")
    decide(client, uc, version, ADA)
    decide(client, uc, version, GRACE, decision=approvals.REJECTED)
    assert f"was rejected by {GRACE}" in refused(mlflow, uc, version)
    with pytest.raises(approvals.ApprovalError, match="a rejection is final"):
        decide(client, uc, version, LINUS)


def test_a_policy_asking_for_more_approvals_than_approvers_does_not_load(tmp_path):
    with pytest.raises(Exception, match="3 approvals are required but only 2 approvers"):
        use_case(tmp_path, [ADA, GRACE], 3)
