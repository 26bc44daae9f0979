"""The events Lakeloop raises, one builder per kind: what the message says, its numbers,
its links and the key that makes it happen once."""

from __future__ import annotations

import hashlib

from lakeloop.governance import events as ev
from lakeloop.governance.events import Event


def _links(**urls: str | None) -> dict[str, str]:
    return {name.replace("_", " "): url for name, url in urls.items() if url}


def gate(use_case: str, version: str, name: str, passed: bool, description: str, *,
         run_id: str = "", run_url: str = "", model_url: str = "") -> Event:
    return Event(
        ev.GATE_PASSED if passed else ev.GATE_FAILED, use_case, f"v{version}/{name}",
        f"{name} {'passed' if passed else 'FAILED'} for v{version}: {description}",
        details={"gate": name}, links=_links(dagster_run=run_url, model_version=model_url),
        model_version=version, run_id=run_id)


def contract_error(use_case: str, table: str, window: str, check: str, description: str, *,
                   run_id: str = "", run_url: str = "") -> Event:
    # The same failure on the same window is one event; different data failing is another.
    digest = hashlib.sha256(description.encode()).hexdigest()[:12]
    return Event(
        ev.CONTRACT_ERROR, use_case, f"{table}/{window}/{check}/{digest}",
        f"{table} {window}: data contract check {check} failed at error severity, so the "
        f"assets downstream of it wait: {description}",
        details={"table": table, "window": window, "check": check},
        links=_links(dagster_run=run_url), run_id=run_id)


def report(kind: str, use_case: str, day: str, summary: str, details: dict, *,
           model_version: str = "", report_url: str = "", run_id: str = "",
           run_url: str = "") -> Event:
    """A monitoring verdict of one day: drift, performance or fairness."""
    return Event(kind, use_case, day, f"{day}: {summary}", details=details,
                 links=_links(report=report_url, dagster_run=run_url),
                 model_version=model_version, run_id=run_id)


def approval_waiting(use_case: str, version: str, required: int, approvers: tuple[str, ...],
                     *, model_url: str = "", launchpad_url: str = "", run_id: str = "",
                     run_url: str = "") -> Event:
    command = f"lakeloop approve {use_case} {version} --by <you> --reason <why>"
    who = f" (approvers: {', '.join(approvers)})" if approvers else ""
    return Event(
        ev.APPROVAL_WAITING, use_case, f"v{version}",
        f"v{version} passed every gate and waits for {required} approval(s){who}: review its "
        f"model card, then `{command}` (or `lakeloop reject ...`), or launch the "
        f"{use_case}_approval job", details={"command": command, "required": required},
        links=_links(model_version=model_url, approval_job=launchpad_url,
                     dagster_run=run_url),
        model_version=version, run_id=run_id)


def decision(use_case: str, version: str, decision: str, by: str, at: str, reason: str,
             status: str, *, model_url: str = "") -> Event:
    kind = ev.APPROVED if decision == "approved" else ev.REJECTED
    return Event(kind, use_case, f"v{version}/{by}/{at}",
                 f"v{version} {decision} by {by}: {reason} (the version is now {status})",
                 details={"status": status, "reason": reason, "decided_at": at},
                 links=_links(model_version=model_url), model_version=version, actor=by)


def promoted(use_case: str, version: str, previous: str | None, how: str, *,
             model_url: str = "", endpoint: str = "", run_id: str = "",
             run_url: str = "") -> Event:
    return Event(
        ev.PROMOTED, use_case, f"v{version}/from-{previous or 'none'}",
        f"v{version} is champion (was {'v' + previous if previous else 'none'}): {how}",
        details={"previous": previous or "none"},
        links=_links(model_version=model_url, endpoint=endpoint, dagster_run=run_url),
        model_version=version, run_id=run_id)


def rolled_back(use_case: str, challenger: str, champion: str, reasons: list[str],
                checks: dict, *, model_url: str = "", run_id: str = "",
                run_url: str = "") -> Event:
    return Event(
        ev.ROLLED_BACK, use_case, f"v{challenger}/over-v{champion}",
        f"v{challenger}'s rollout failed; champion v{champion} keeps the traffic: "
        + "; ".join(reasons), details=checks,
        links=_links(model_version=model_url, dagster_run=run_url),
        model_version=challenger, run_id=run_id)


def rollback(use_case: str, version: str, previous: str, by: str, reason: str, at: str, *,
             model_url: str = "") -> Event:
    return Event(ev.ROLLBACK, use_case, f"v{previous}-to-v{version}/{at}",
                 f"{by} put v{version} back as champion (was v{previous}): {reason}",
                 details={"rolled_back_from": previous, "reason": reason},
                 links=_links(model_version=model_url), model_version=version, actor=by)


def retraining(use_case: str, run_key: str, trigger: str, reason: str) -> Event:
    return Event(ev.RETRAINING, use_case, run_key,
                 f"the {trigger} sensor requested retraining: {reason}",
                 details={"trigger": trigger, "run_key": run_key}, actor=f"{trigger} sensor")


def run_failed(use_case: str, run_id: str, job: str, error: str, *, run_url: str = "",
               steps: list[str] | None = None) -> Event:
    return Event(ev.RUN_FAILED, use_case, run_id,
                 f"run {run_id[:8]} of {job} failed: {error}",
                 details={"job": job, "failed_steps": ", ".join(steps or []) or "unknown"},
                 links=_links(dagster_run=run_url), run_id=run_id)
