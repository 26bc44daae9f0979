"""What Lakeloop tells people and keeps for auditors: one event per decision or alarm.

An event's ``key`` is its identity: the same gate verdict of the same version, the same
day's drift verdict, the same retraining request (its run key). A retried run or a repeated
sensor tick builds the same key again, and the audit trail records it, and alerts send it,
only once. This module imports nothing from Lakeloop: the use-case schema names its kinds.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

# The kinds, what each means, and whether it is a decision (audit) or an alarm (alert-worthy
# by default; any kind can be routed).
GATE_PASSED, GATE_FAILED = "gate_passed", "gate_failed"
CONTRACT_ERROR = "contract_error"
DRIFT, PERFORMANCE, FAIRNESS = "drift_detected", "performance_degraded", "fairness_breach"
APPROVAL_WAITING, APPROVED, REJECTED = "approval_waiting", "approved", "rejected"
PROMOTED, ROLLED_BACK, ROLLBACK = "promoted", "rolled_back", "rollback"
RETRAINING, RUN_FAILED = "retraining_requested", "run_failed"

KINDS: dict[str, str] = {
    GATE_PASSED: "a validation gate passed",
    GATE_FAILED: "a validation gate failed: the candidate cannot become challenger",
    CONTRACT_ERROR: "an error-severity data-contract check failed: downstream assets wait",
    DRIFT: "a day's served data drifted from the training reference",
    PERFORMANCE: "a day's live recall is significantly below the floor (measured or estimated)",
    FAIRNESS: "a day's live answers breach the fairness tolerances beyond sampling noise",
    APPROVAL_WAITING: "a challenger waits for a person's approval",
    APPROVED: "a person approved a challenger",
    REJECTED: "a person rejected a challenger",
    PROMOTED: "a challenger became champion",
    ROLLED_BACK: "a rollout failed its checks: the champion keeps the traffic",
    ROLLBACK: "a person put the previous champion back",
    RETRAINING: "a sensor requested retraining",
    RUN_FAILED: "a Dagster run failed",
}
ALL = "*"


@dataclass(frozen=True)
class Event:
    kind: str
    use_case: str
    key: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    model_version: str = ""
    actor: str = "lakeloop"
    run_id: str = ""
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r} (known: {', '.join(KINDS)})")
        if not self.key.strip():
            raise ValueError("an event needs a key: it is what makes it happen once")

    @property
    def identity(self) -> str:
        """The key the trail stores: unique across kinds and use cases."""
        return f"{self.use_case}/{self.kind}/{self.key}"

    def title(self) -> str:
        version = f" v{self.model_version}" if self.model_version else ""
        text = f"[lakeloop] {self.use_case}{version}: {self.kind.replace('_', ' ')}"
        return text[:200]

    def body(self) -> str:
        """Plain text every destination renders: the summary, the numbers, then the links
        as full URLs (an email's text part keeps them, a chat client links them)."""
        lines = [self.summary, ""]
        lines += [f"{name}: {_text(value)}" for name, value in self.details.items()]
        if self.links:
            lines += [""] + [f"{name}: {url}" for name, url in self.links.items()]
        lines += ["", f"event: {self.identity} at {self.at.isoformat(timespec='seconds')}"
                  + (f" by {self.actor}" if self.actor else "")]
        return "\n".join(lines).strip()

    def details_json(self) -> str:
        return json.dumps(self.details, sort_keys=True, default=str)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
