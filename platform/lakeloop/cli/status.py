"""What `lakeloop status` reports: each use case's champion, challenger, drift, open
approvals and endpoint, gathered as data (``status_report``) and printed as a table."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from lakeloop.cli.errors import CliError

KEY_METRICS = ("recall", "auc", "precision", "f1")
NO_INSTANCE = "no Dagster instance yet"


def no_champion(use_case) -> str:
    return (f"no champion yet: run `make demo`, or materialize "
            f"{use_case.name}/deployment/champion (the {use_case.name}_promote job)")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _iso(ms_or_s: float | None, millis: bool = False) -> str | None:
    import datetime as dt

    if ms_or_s is None:
        return None
    seconds = ms_or_s / 1000 if millis else ms_or_s
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def _version_info(mlflow, client, name: str, mv) -> dict[str, Any]:
    """What a person asks about a model version: how good, gated, approved, rolled out."""
    from mlflow.exceptions import MlflowException

    from lakeloop.deployment import approvals
    tags = dict(mv.tags or {})
    try:
        metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
    except MlflowException:
        metrics = {}
    threshold = tags.get("threshold")
    return {
        "version": str(mv.version),
        "created": _iso(mv.creation_timestamp, millis=True),
        "metrics": {m: _finite(round(metrics[f"test_{m}"], 4)) for m in KEY_METRICS
                    if f"test_{m}" in metrics},
        "threshold": round(float(threshold), 4) if threshold else None,
        "gates": tags.get("gates", "unknown"),
        "approval": ({"status": tags[approvals.STATUS], "by": tags.get(approvals.BY, ""),
                      "at": tags.get(approvals.AT, ""),
                      "reason": tags.get(approvals.REASON, "")}
                     if approvals.STATUS in tags else None),
        "rollout": tags.get("rollout.decision"),
        "training_set_version": tags.get("training_set_version"),
        "url": mlflow.model_version_url(name, mv.version),
    }


def _registry_exists(mlflow) -> bool:
    """A local SQLite registry that was never written is reported, not created."""
    uri = mlflow.tracking_uri
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def _registry_status(mlflow, use_case, notes: dict[str, str]) -> dict[str, Any]:
    from lakeloop.deployment import approvals
    from lakeloop.tracking import CHALLENGER, CHAMPION

    found: dict[str, Any] = {"champion": None, "challenger": None, "open_approvals": []}
    if not _registry_exists(mlflow):
        notes["champion"] = f"no MLflow registry yet; {no_champion(use_case)}"
        return found
    client = mlflow.client()
    versions = {alias: mlflow.version_by_alias(use_case.name, alias)
                for alias in (CHAMPION, CHALLENGER)}
    for alias, mv in versions.items():
        if mv is not None:
            found[alias] = _version_info(mlflow, client, use_case.name, mv)
    champion, challenger = found["champion"], found["challenger"]
    if champion is None:
        notes["champion"] = no_champion(use_case)
    if challenger is None:
        notes["challenger"] = (f"no challenger yet: the {use_case.name}_retrain job trains a "
                               "candidate; it becomes challenger once every gate passes")
        return found
    if champion is not None and challenger["version"] == champion["version"]:
        challenger["is_champion"] = True
        return found
    challenger["is_champion"] = False
    approval = challenger["approval"] or {}
    if use_case.sensitive and approval.get("status", approvals.PENDING) == approvals.PENDING:
        version = challenger["version"]
        found["open_approvals"].append({
            "version": version, "since": challenger["created"],
            "approve": f"lakeloop approve {use_case.name} {version} --by <you> --reason <why>",
            "reject": f"lakeloop reject {use_case.name} {version} --by <you> --reason <why>"})
    elif approval.get("status") == approvals.REJECTED:
        notes["challenger"] = (f"v{challenger['version']} was rejected: train a new candidate "
                               f"(the {use_case.name}_retrain job)")
    elif champion is not None:
        notes["challenger"] = (f"v{challenger['version']} waits for promotion: launch the "
                               f"{use_case.name}_promote job")
    return found


def _dagster_home(settings) -> Path | None:
    """DAGSTER_HOME, or the data root's instance (where `lakeloop approve` records), if it
    holds anything yet."""
    value = os.environ.get("DAGSTER_HOME", "").strip()
    home = Path(value).expanduser() if value else settings.dagster_home
    return home if home.is_dir() and any(home.iterdir()) else None


def _drift_status(instance, use_case, notes: dict[str, str]) -> dict[str, Any] | None:
    from lakeloop import keys
    key = keys.key(use_case, keys.MONITORING, "drift_report")
    if instance is None:
        notes["drift"] = (f"{NO_INSTANCE}: set DAGSTER_HOME (make dev uses "
                          "<data root>/dagster) or run `make demo`")
        return None
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        notes["drift"] = (f"no drift report yet: materialize {key.to_user_string()} for a "
                          "production day (the daily job runs it)")
        return None
    mat = event.asset_materialization
    meta = {k: v.value for k, v in mat.metadata.items()}
    return {
        "partition": mat.partition,
        "drifted": meta.get("drifted"),
        "judged": meta.get("judged", True),
        "drift_share": meta.get("drift_share"),
        "drifted_features": meta.get("drifted_features"),
        "required_features": meta.get("required_features"),
        "verdict": meta.get("verdict"),
        "model_version": meta.get("model_version"),
        "report": meta.get("report"),
        "at": _iso(event.timestamp),
    }


def _endpoint_status(resources, use_case, notes: dict[str, str]) -> dict[str, Any]:
    from lakeloop.deployment.runtime import endpoint_name

    endpoint = resources["serving"].endpoint(endpoint_name(use_case))
    if endpoint is None:
        notes["endpoint"] = "not answering: `lakeloop serve` starts the champion's endpoint"
        return {"answers": False, "url": None, "model_version": None}
    return {"answers": True, "url": endpoint.predictions_url,
            "model_version": endpoint.model_version or None}


def status_report(settings, resources, use_cases) -> dict[str, Any]:
    """Everything `lakeloop status` shows, as data."""
    import dagster as dg

    try:
        mlflow = resources["mlflow"].process_config_and_initialize()
    except dg.DagsterInvalidConfigError as exc:
        raise CliError(f"the MLflow settings are incomplete ({str(exc).splitlines()[-1]}); "
                       "set the variables your LAKELOOP_ENV needs") from None
    home = _dagster_home(settings)
    instance = dg.DagsterInstance.from_config(str(home)) if home else None
    try:
        report = []
        for use_case in use_cases:
            notes: dict[str, str] = {}
            entry: dict[str, Any] = {"name": use_case.name, "title": use_case.title,
                                     "owner": use_case.owner, "sensitive": use_case.sensitive}
            entry.update(_registry_status(mlflow, use_case, notes))
            entry["drift"] = _drift_status(instance, use_case, notes)
            entry["endpoint"] = _endpoint_status(resources, use_case, notes)
            entry["notes"] = notes
            report.append(entry)
    finally:
        if instance is not None:
            instance.dispose()
    return {"data_root": str(settings.data_root),
            "dagster_home": str(home) if home else None, "use_cases": report}


def _describe_version(info: dict[str, Any]) -> str:
    parts = [f"v{info['version']}"]
    parts += [f"{name} {value:.3f}" for name, value in info["metrics"].items()
              if value is not None]
    if info["threshold"] is not None:
        parts.append(f"threshold {info['threshold']:.4f}")
    parts.append(f"gates {info['gates']}")
    approval = info["approval"]
    if approval and approval["status"] == "pending":
        parts.append("awaits approval")
    elif approval:
        parts.append(approval["status"] + (f" by {approval['by']}" if approval["by"] else ""))
    if info["rollout"]:
        parts.append(f"rollout {info['rollout']}")
    return ", ".join(parts)


def _status_rows(entry: dict[str, Any]) -> list[tuple[str, str]]:
    notes = entry["notes"]
    rows: list[tuple[str, str]] = []
    for alias in ("champion", "challenger"):
        info = entry[alias]
        if info is None:
            rows.append((alias, notes.get(alias, "none")))
        elif info.get("is_champion"):
            rows.append((alias, f"v{info['version']} (promoted: it is the champion)"))
        else:
            text = _describe_version(info)
            rows.append((alias, text + (f"; {notes[alias]}" if alias in notes else "")))
    drift = entry["drift"]
    if drift is None:
        rows.append(("drift", notes["drift"]))
    else:
        verdict = ("DRIFTED" if drift["drifted"] else
                   "no drift" if drift["judged"] else "not judged (not enough data)")
        share = ("" if drift["drifted_features"] is None else
                 f", {drift['drifted_features']} features drifted"
                 + (f" (needs {drift['required_features']})"
                    if drift["required_features"] is not None else ""))
        rows.append(("drift", f"{drift['partition']}: {verdict}{share}, model "
                              f"v{drift['model_version']}, reported {drift['at']}"))
    if entry["open_approvals"]:
        for item in entry["open_approvals"]:
            rows.append(("approval", f"v{item['version']} awaits a decision: "
                                     f"`{item['approve']}` (or reject)"))
    else:
        rows.append(("approval", "nothing awaits a decision" if entry["sensitive"]
                     else "not needed (the use case is not sensitive)"))
    endpoint = entry["endpoint"]
    rows.append(("endpoint", f"{endpoint['url']} answers (v{endpoint['model_version']})"
                 if endpoint["answers"] else notes["endpoint"]))
    return rows


def print_status(report: dict[str, Any]) -> None:
    for i, entry in enumerate(report["use_cases"]):
        if i:
            print()
        sensitive = ", sensitive" if entry["sensitive"] else ""
        print(f"{entry['name']}  {entry['title']} ({entry['owner']}{sensitive})")
        rows = _status_rows(entry)
        width = max(len(label) for label, _ in rows)
        for label, text in rows:
            print(f"  {label:<{width}}  {text}")
    if not report["use_cases"]:
        print("no use cases: LAKELOOP_USE_CASES names folders without *.yaml files")


