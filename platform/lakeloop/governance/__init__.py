"""Governance: every decision recorded for auditors, every alarm sent to the people it
concerns, each exactly once per event.

``record`` is the one entry point the assets, jobs, sensors and the command line call at a
decision: it skips an event the trail already holds (a retried run, a repeated sensor tick),
sends the alert its use case routes, then appends the event, with where it went, to the
use case's audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lakeloop.governance.alerts import Delivery, deliver
from lakeloop.governance.audit import AuditTrail
from lakeloop.governance.events import Event

__all__ = ["AuditTrail", "Event", "Recorded", "audit_path", "record", "trail"]


@dataclass(frozen=True)
class Recorded:
    event: Event
    duplicate: bool  # the trail already held it: nothing sent, nothing appended
    deliveries: tuple[Delivery, ...] = ()

    def describe(self) -> str:
        if self.duplicate:
            return f"{self.event.identity}: already recorded, not sent again"
        sent = [d.destination for d in self.deliveries if d.delivered]
        failed = [f"{d.destination} ({d.error})" for d in self.deliveries
                  if d.configured and not d.delivered]
        skipped = [d.destination for d in self.deliveries if not d.configured]
        return (f"{self.event.identity}: recorded"
                + (f"; alerted {', '.join(sent)}" if sent else "")
                + (f"; NOT delivered to {', '.join(failed)}" if failed else "")
                + (f"; skipped {', '.join(skipped)} (its URL variable is not set here)"
                   if skipped else ""))


def audit_path(lakehouse, use_case) -> Path:
    # keys imports the use-case schema, which imports this package's event kinds.
    from lakeloop import keys

    return Path(lakehouse.path(keys.key(use_case, keys.GOVERNANCE, "audit")))


def trail(lakehouse, use_case) -> AuditTrail:
    return AuditTrail(audit_path(lakehouse, use_case))


def record(lakehouse, use_case, event: Event | None, *, log=None,
           environ: dict[str, str] | None = None) -> Recorded | None:
    """Record ``event`` in ``use_case``'s trail and alert its routes, once per event key
    (None: nothing happened, nothing to record). ``log`` (a Dagster or standard logger)
    hears what happened, failed deliveries as warnings: an unreachable destination never
    fails the decision."""
    if event is None:
        return None
    audit = trail(lakehouse, use_case)
    if audit.seen(event.identity):
        done = Recorded(event, True)
    else:
        deliveries = tuple(deliver(use_case.alerts, event, environ))
        audit.append(event, [d.destination for d in deliveries if d.delivered],
                     [f"{d.destination}: {d.error}" for d in deliveries if not d.delivered])
        done = Recorded(event, False, deliveries)
    if log is not None:
        failed = any(d.configured and not d.delivered for d in done.deliveries)
        (log.warning if failed else log.info)(done.describe())
    return done
