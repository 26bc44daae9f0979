"""Human approval of a model version: decisions that can be trusted.

Sensitive use cases promote a challenger to champion only once enough of the people the
use case names (``approvals.approvers``) have approved it: ``approvals.required`` distinct
people, and never the person who trained the version alone (four eyes). Each decision is a
signed record on the model version in MLflow (tag ``approval.records``): an HMAC-SHA256 over
the use case, version, decision, who, when and why, keyed by ``LAKELOOP_APPROVAL_KEY`` from
the environment. Promotion verifies every record, so a tag edited in MLflow afterwards is
refused. The summary tags (``approval.status``, ``approval.by``, ...) are for people and
are never trusted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

STATUS, BY, AT, REASON = "approval.status", "approval.by", "approval.at", "approval.reason"
RECORDS = "approval.records"
TRAINED_BY = "trained_by"
APPROVED, REJECTED, PENDING = "approved", "rejected", "pending"
KEY_ENV = "LAKELOOP_APPROVAL_KEY"
# Who is deciding, when the run's environment says so (a Kubernetes pod's identity): then
# --by must name the same person, or may be left out.
USER_ENV = "LAKELOOP_USER"
MIN_KEY_BYTES = 16


def job_name(use_case) -> str:
    """The job that records a decision from the Dagster UI (jobs/approvals.py)."""
    return f"{use_case.name}_approval"


class ApprovalError(ValueError):
    pass


@dataclass(frozen=True)
class Approval:
    """The summary a person reads: the state and the latest decision."""

    status: str
    by: str = ""
    at: str = ""
    reason: str = ""

    @property
    def approved(self) -> bool:
        return self.status == APPROVED


@dataclass(frozen=True)
class Decision:
    """One person's signed decision on one version."""

    use_case: str
    version: str
    decision: str
    by: str
    at: str
    reason: str
    signature: str = ""

    def payload(self) -> bytes:
        fields = asdict(self)
        fields.pop("signature")
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def signing_key(environ: dict[str, str] | None = None) -> bytes:
    """The approvals' HMAC key, from the environment only."""
    value = (environ if environ is not None else os.environ).get(KEY_ENV, "")
    if len(value.encode()) < MIN_KEY_BYTES:
        raise ApprovalError(
            f"{KEY_ENV} is {'too short' if value else 'not set'}: decisions are signed with "
            f"it (at least {MIN_KEY_BYTES} bytes; the same value wherever approvals are "
            "recorded or verified). Locally `make setup` generated one: `export "
            f"{KEY_ENV}=$(cat .lakeloop/secrets/approval.key)`; on Kubernetes it comes from a "
            "Secret (see the README)")
    return value.encode()


def sign(decision: Decision, key: bytes) -> Decision:
    mac = hmac.new(key, decision.payload(), hashlib.sha256).hexdigest()
    return Decision(**{**asdict(decision), "signature": mac})


def genuine(decision: Decision, key: bytes) -> bool:
    expected = hmac.new(key, decision.payload(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, decision.signature)


def records(tags: dict[str, str]) -> list[Decision]:
    """The decisions recorded on a version (unverified)."""
    try:
        raw = json.loads(tags.get(RECORDS, "[]"))
        return [Decision(**{k: str(v) for k, v in r.items()}) for r in raw]
    except (TypeError, ValueError) as exc:
        raise ApprovalError(f"the approval records cannot be read ({exc}): they were edited "
                            "by hand; record the decisions again") from None


def read(client, name: str, version: str | int) -> Approval:
    tags = client.get_model_version(name, str(version)).tags
    return Approval(tags.get(STATUS, PENDING), tags.get(BY, ""), tags.get(AT, ""),
                    tags.get(REASON, ""))


def identity(by: str, environ: dict[str, str] | None = None) -> str:
    """Who decides: the run's identity (``LAKELOOP_USER``) when the environment gives one,
    else ``--by``."""
    env_user = (environ if environ is not None else os.environ).get(USER_ENV, "").strip()
    by = by.strip()
    if env_user and by and by != env_user:
        raise ApprovalError(f"this environment identifies you as {env_user!r} ({USER_ENV}); "
                            f"--by {by!r} cannot decide on someone else's behalf")
    who = env_user or by
    if not who:
        raise ApprovalError("say who decides (--by): an approval without a name is no audit")
    return who


@dataclass(frozen=True)
class Verdict:
    """Whether the signed decisions allow promotion, and why not."""

    promotable: bool
    approvers: tuple[str, ...]
    reason: str
    rejected: bool = False  # a person rejected it: final, no approval can follow


def judge(policy, decisions: Sequence[Decision], trained_by: str, name: str,
          version: str, key: bytes) -> Verdict:
    """Promotion's check: every record genuine and for this version, no rejection, and
    enough distinct listed approvers, not only the trainer."""
    for d in decisions:
        if not genuine(d, key) or (d.use_case, d.version) != (name, str(version)):
            raise ApprovalError(
                f"the {d.decision} of {name} v{version} by {d.by!r} at {d.at} does not match "
                "its integrity check: it was changed after it was recorded (or signed with "
                f"another {KEY_ENV}); promotion refused. Record the decision again with "
                "`lakeloop approve`")
        if d.decision == REJECTED:
            return Verdict(False, (), f"v{version} was rejected by {d.by} at {d.at}: {d.reason}",
                           rejected=True)
    approvers = tuple(dict.fromkeys(d.by for d in decisions if d.decision == APPROVED))
    listed = set(policy.approvers)
    outsiders = [a for a in approvers if listed and a not in listed]
    if outsiders:
        raise ApprovalError(f"{', '.join(outsiders)} may not approve {name} (approvers: "
                            f"{', '.join(policy.approvers)}); promotion refused")
    if len(approvers) < policy.required:
        have = f"{len(approvers)} ({', '.join(approvers)})" if approvers else "none"
        return Verdict(False, approvers, f"{name} needs {policy.required} distinct approvals "
                       f"and v{version} has {have}")
    if trained_by and set(approvers) == {trained_by}:
        return Verdict(False, approvers, f"{trained_by} trained v{version} and is its only "
                       "approver: four eyes are needed, another approver must decide too")
    return Verdict(True, approvers, f"approved by {', '.join(approvers)}")


def record(client, use_case, version: str | int, decision: str, by: str, reason: str,
           *, key: bytes | None = None, environ: dict[str, str] | None = None) -> Approval:
    """Record one person's signed decision on the challenger; who and why are required,
    when is now (UTC). Returns the summary after it."""
    name, version = use_case.name, str(version)
    if decision not in (APPROVED, REJECTED):
        raise ApprovalError(f"decision must be {APPROVED} or {REJECTED}, not {decision!r}")
    who = identity(by, environ)
    if not reason.strip():
        raise ApprovalError("give a reason (--reason): it is what an auditor reads later")
    policy = use_case.approvals
    if policy.approvers and who not in policy.approvers:
        raise ApprovalError(f"{who!r} is not an approver of {name} (approvers: "
                            f"{', '.join(policy.approvers)}); the use case's "
                            "`approvals.approvers` says who may decide")
    key = key if key is not None else signing_key(environ)
    mv = client.get_model_version(name, version)
    if mv.tags.get("gates") != "passed":
        raise ApprovalError(f"{name} v{version} has not passed its gates "
                            f"(gates: {mv.tags.get('gates', 'unknown')}); only a challenger "
                            "that passed every gate can be approved")
    if mv.tags.get(STATUS) == REJECTED:
        raise ApprovalError(f"{name} v{version} was rejected by {mv.tags.get(BY, '?')} at "
                            f"{mv.tags.get(AT, '?')} ({mv.tags.get(REASON, '')}); a rejection "
                            "is final: train a new candidate")
    challenger = _challenger(client, name)
    if challenger != version:
        raise ApprovalError(f"{name} v{version} is not the challenger (the challenger is "
                            f"{'v' + challenger if challenger else 'none'}): decisions are "
                            "taken on the challenger, the version that would be promoted")
    earlier = records(mv.tags)
    if any(d.by == who and d.decision == decision for d in earlier):
        raise ApprovalError(f"{who} already {decision} {name} v{version}: a second decision "
                            "by the same person does not count twice")
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    signed = sign(Decision(name, version, decision, who, at, reason.strip()), key)
    decisions = [*earlier, signed]
    verdict = judge(policy, decisions, mv.tags.get(TRAINED_BY, ""), name, version, key)
    status = (REJECTED if decision == REJECTED else APPROVED if verdict.promotable
              else PENDING)
    client.set_model_version_tag(name, version, RECORDS,
                                 json.dumps([asdict(d) for d in decisions]))
    for tag, value in ((STATUS, status), (BY, who), (AT, at), (REASON, reason.strip())):
        client.set_model_version_tag(name, version, tag, value)
    return Approval(status, who, at, reason.strip())


def check(client, use_case, version: str | int, *, key: bytes | None = None,
          tags: dict[str, str] | None = None) -> Verdict:
    """Promotion's verification of the signed decisions on ``version`` (its ``tags`` when
    the caller already read them)."""
    version = str(version)
    if tags is None:
        tags = client.get_model_version(use_case.name, version).tags
    return judge(use_case.approvals, records(tags), tags.get(TRAINED_BY, ""),
                 use_case.name, version, key if key is not None else signing_key())


def trainer(run_tags: dict[str, str], environ: dict[str, str] | None = None) -> str:
    """Who launched a training run: the run's identity (``LAKELOOP_USER``), else the person
    a launch tagged (``lakeloop/launched_by``, or Dagster's ``dagster/user``), else the
    operating-system account."""
    import getpass

    env = environ if environ is not None else os.environ
    for value in (env.get(USER_ENV, ""), run_tags.get("lakeloop/launched_by", ""),
                  run_tags.get("dagster/user", "")):
        if value.strip():
            return value.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _challenger(client, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    from lakeloop.tracking import CHALLENGER

    try:
        return str(client.get_model_version_by_alias(name, CHALLENGER).version)
    except MlflowException:
        return None
