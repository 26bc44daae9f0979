"""Human approval of a model version, kept as an audit trail on the version in MLflow.

Sensitive use cases promote a challenger to champion only once a person has approved it:
who, when and why are recorded as tags of the model version (and, from Dagster, as
materialisations of the use case's approval asset).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

STATUS, BY, AT, REASON = "approval.status", "approval.by", "approval.at", "approval.reason"
APPROVED, REJECTED, PENDING = "approved", "rejected", "pending"


class ApprovalError(ValueError):
    pass


@dataclass(frozen=True)
class Approval:
    status: str
    by: str = ""
    at: str = ""
    reason: str = ""

    @property
    def approved(self) -> bool:
        return self.status == APPROVED


def read(client, name: str, version: str | int) -> Approval:
    tags = client.get_model_version(name, str(version)).tags
    return Approval(tags.get(STATUS, PENDING), tags.get(BY, ""), tags.get(AT, ""),
                    tags.get(REASON, ""))


def record(client, name: str, version: str | int, decision: str, by: str, reason: str
           ) -> Approval:
    """Approve or reject a version; who and why are required, when is now (UTC)."""
    if decision not in (APPROVED, REJECTED):
        raise ApprovalError(f"decision must be {APPROVED} or {REJECTED}, not {decision!r}")
    if not by.strip():
        raise ApprovalError("say who decides (--by): an approval without a name is no audit")
    if not reason.strip():
        raise ApprovalError("give a reason (--reason): it is what an auditor reads later")
    mv = client.get_model_version(name, str(version))
    if mv.tags.get("gates") != "passed":
        raise ApprovalError(f"{name} v{version} has not passed its gates "
                            f"(gates: {mv.tags.get('gates', 'unknown')}); only a challenger "
                            "that passed every gate can be approved")
    if mv.tags.get(STATUS) == REJECTED:
        raise ApprovalError(f"{name} v{version} was rejected by {mv.tags.get(BY, '?')} at "
                            f"{mv.tags.get(AT, '?')} ({mv.tags.get(REASON, '')}); a rejection "
                            "is final: train a new candidate")
    challenger = _challenger(client, name)
    if challenger != str(version):
        raise ApprovalError(f"{name} v{version} is not the challenger (the challenger is "
                            f"{'v' + challenger if challenger else 'none'}): decisions are "
                            "taken on the challenger, the version that would be promoted")
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for key, value in ((STATUS, decision), (BY, by.strip()), (AT, at),
                       (REASON, reason.strip())):
        client.set_model_version_tag(name, str(version), key, value)
    return Approval(decision, by.strip(), at, reason.strip())


def _challenger(client, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    from lakeloop.tracking import CHALLENGER

    try:
        return str(client.get_model_version_by_alias(name, CHALLENGER).version)
    except MlflowException:
        return None
