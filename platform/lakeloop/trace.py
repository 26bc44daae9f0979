"""Lineage from a prediction: one answered request (by its request id or its event's key)
back through the model version that answered it to the data it was trained on, or one model
version back to its data.

Every id in the chain is resolved, not only printed: the MLflow run is fetched, each Delta
version is found in its table's log (with the versions that commit itself recorded having
read), and each raw snapshot is hashed again and compared with the hash the training run
recorded. ``checks`` lists what was resolved and what was not; the chain is whole only when
every check holds. It reads files, the Delta logs and MLflow; it starts nothing (no Spark).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeloop import keys
from lakeloop.raw.snapshots import file_sha256
from lakeloop.usecase import UseCase

REQUESTS = "requests"


class TraceError(LookupError):
    """Nothing matches what was asked for; the message says where it looked."""


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "ok": self.ok, "detail": self.detail}


# --- the request log -----------------------------------------------------------------------

def request_log_dir(lakehouse, use_case: UseCase) -> Path:
    return lakehouse.path(keys.key(use_case, keys.MONITORING, REQUESTS))


def find_records(lakehouse, use_cases: list[UseCase], ident: str) -> list[tuple[UseCase, dict]]:
    """Every logged answer whose request id or event key is ``ident``, oldest first."""
    from lakeloop.deployment.seldon.request_log import complete_lines

    needle = json.dumps(ident)  # as it appears in a record: quoted, escaped
    found = []
    for use_case in use_cases:
        for path in sorted(request_log_dir(lakehouse, use_case).glob("ds=*/*.jsonl")):
            for line in complete_lines(path):
                if needle not in line:
                    continue
                record = json.loads(line)
                if ident in (record.get("request_id"), record.get("request_key")):
                    found.append((use_case, record))
    return sorted(found, key=lambda ur: ur[1].get("logged_at", ""))


def prediction(record: dict) -> dict[str, Any]:
    reasons = record.get("reasons")
    return {
        "request_id": record.get("request_id"), "row": record.get("row"),
        "event_key": record.get("request_key"), "entity_key": record.get("entity_key"),
        "event_time": record.get("event_time"), "answered_at": record.get("logged_at"),
        "predictor": record.get("predictor"), "model_version": record.get("model_version"),
        "status": record.get("status"), "error": record.get("error") or None,
        "probability": record.get("probability"), "prediction": record.get("prediction"),
        "latency_ms": record.get("latency_ms"),
        # The complete row the model scored: the entity's online values, read through the
        # feature service, and the request's own features.
        "inputs": record.get("features"),
        "reasons": json.loads(reasons) if reasons else None,
    }


# --- Delta logs, read without Spark ----------------------------------------------------------

def _filesystem(uri: str):
    from pyarrow import fs

    if "://" not in uri:
        return fs.LocalFileSystem(), str(Path(uri).resolve())
    return fs.FileSystem.from_uri(uri.replace("s3a://", "s3://", 1))


def delta_commit(table: str, version: int) -> dict[str, Any] | None:
    """The commit of ``version`` from the table's Delta log (its commitInfo, with the lineage
    it recorded parsed), or None when the log has no such version."""
    from pyarrow import fs as pafs

    filesystem, root = _filesystem(table)
    path = f"{root.rstrip('/')}/_delta_log/{int(version):020d}.json"
    if filesystem.get_file_info(path).type != pafs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as stream:
        lines = stream.read().decode().splitlines()
    for line in lines:
        action = json.loads(line) if line.strip() else {}
        if "commitInfo" in action:
            info = action["commitInfo"]
            meta = info.get("userMetadata")
            return {"timestamp": info.get("timestamp"), "operation": info.get("operation"),
                    "recorded": json.loads(meta) if meta else {}}
    return {"timestamp": None, "operation": None, "recorded": {}}


def _table_entry(name: str, table: str, version: int, checks: list[Check]) -> dict[str, Any]:
    commit = delta_commit(table, version)
    checks.append(Check(f"{name} v{version}", commit is not None,
                        f"in the Delta log of {table}" if commit is not None
                        else f"no version {version} in the Delta log of {table}"))
    entry: dict[str, Any] = {"table": name, "path": table, "version": version,
                             "readable": commit is not None}
    if commit is not None:
        entry["operation"] = commit["operation"]
        entry["committed_ms"] = commit["timestamp"]
        entry["dagster_run_id"] = commit["recorded"].get("dagster_run_id")
        entry["read"] = commit["recorded"].get("source_versions", {})
    return entry


def _source_key(use_case: UseCase, table: str):
    layer = keys.TRAINING if table == "training_set" else keys.LAKEHOUSE
    return keys.key(use_case, layer, table)


# --- raw snapshots -----------------------------------------------------------------------------

def _raw_files(lakehouse, use_case: UseCase) -> dict[str, Path]:
    """Every stored snapshot of the use case's sources, by its hash (the file's name)."""
    out = {}
    for source in use_case.sources:
        raw = lakehouse.path(keys.key(use_case, keys.RAW, source))
        for path in raw.glob("ds=*/*"):
            if path.is_file() and not path.name.startswith("_"):
                out[path.name.split(".", 1)[0]] = path
    return out


def snapshots(lakehouse, use_case: UseCase, hashes: list[str], checks: list[Check],
              verify: bool = True) -> list[dict[str, Any]]:
    files = _raw_files(lakehouse, use_case)
    out, missing, altered = [], [], []
    for digest in hashes:
        path = files.get(digest)
        entry: dict[str, Any] = {"sha256": digest, "file": str(path) if path else None}
        if path is None:
            missing.append(digest)
        elif verify:
            entry["matches"] = file_sha256(path) == digest
            if not entry["matches"]:
                altered.append(str(path))
        out.append(entry)
    detail = (f"{len(hashes)} raw snapshots " + ("hashed again; all match" if verify
                                                 else "found (not hashed again)"))
    if missing:
        detail = f"{len(missing)} of {len(hashes)} snapshots not stored: {missing[:3]}"
    elif altered:
        detail = f"{len(altered)} snapshots no longer match their hash: {altered[:3]}"
    checks.append(Check("raw snapshots", not missing and not altered, detail))
    return out


# --- the model version -----------------------------------------------------------------------

def model_chain(resources: dict[str, Any], use_case: UseCase, version: str,
                verify: bool = True) -> dict[str, Any]:
    """A model version back to its data, and how it came to serve."""
    from mlflow.exceptions import MlflowException

    from lakeloop.deployment import approvals, promotion

    mlflow, lakehouse = resources["mlflow"], resources["lakehouse"]
    client = mlflow.client()
    checks: list[Check] = []
    try:
        mv = client.get_model_version(use_case.name, str(version))
    except MlflowException:
        raise TraceError(f"{use_case.name} has no model version {version} in the MLflow "
                         f"registry at {mlflow.tracking_uri}") from None
    tags = mv.tags
    try:
        run = client.get_run(mv.run_id)
        run_tags, experiment = run.data.tags, run.info.experiment_id
        checks.append(Check("MLflow run", True, mv.run_id))
    except MlflowException:
        run_tags, experiment = {}, ""
        checks.append(Check("MLflow run", False, f"run {mv.run_id} not found"))
    lineage = {}
    if run_tags:
        try:
            lineage = mlflow.setup().artifacts.load_dict(f"runs:/{mv.run_id}/lineage.json")
        except (MlflowException, OSError, ValueError) as exc:
            checks.append(Check("lineage.json", False, f"not readable: {exc}"))

    training_version = int(tags.get("training_set_version", run_tags.get(
        "lakeloop.training_set_version", "-1")))
    training = _table_entry("training_set", lakehouse.table(_source_key(use_case,
                                                                       "training_set")),
                            training_version, checks)
    recorded = json.loads(run_tags.get("lakeloop.source_versions", "{}") or "{}")
    if training.get("readable"):
        agree = {k: int(v) for k, v in training["read"].items()} == {
            k: int(v) for k, v in recorded.items()}
        checks.append(Check("training set lineage", agree,
                            "the Delta commit and the MLflow run record the same source "
                            "versions" if agree else f"the Delta commit read {training['read']}"
                            f", the MLflow run says {recorded}"))
    sources = []
    for table, v in sorted(recorded.items()):
        entry = _table_entry(table, lakehouse.table(_source_key(use_case, table)), int(v),
                             checks)
        entry["upstream"] = [
            _table_entry(up, lakehouse.table(_source_key(use_case, up)), int(uv), checks)
            for up, uv in sorted(entry.get("read", {}).items())]
        sources.append(entry)

    decisions = []
    try:
        key = approvals.signing_key()
    except approvals.ApprovalError:
        key = None
    for d in approvals.records(tags):
        decisions.append({"decision": d.decision, "by": d.by, "at": d.at, "reason": d.reason,
                          "signature": ("valid" if key and approvals.genuine(d, key)
                                        else "INVALID" if key else "not checked (no key)")})
    if decisions and key:
        forged = [d for d in decisions if d["signature"] == "INVALID"]
        checks.append(Check("approvals", not forged,
                            f"{len(decisions)} signed decisions verified" if not forged
                            else f"{len(forged)} decisions fail their signature"))
    model = client.get_registered_model(use_case.name)
    history = json.loads(model.tags.get(promotion.HISTORY, "[]") or "[]")
    rollout = tags.get("rollout")
    return {
        "model": {
            "name": use_case.name, "version": str(version),
            "run_id": mv.run_id,
            "run_url": mlflow.run_url(experiment, mv.run_id) if experiment else None,
            "model_version_url": mlflow.model_version_url(use_case.name, version),
            "dagster_run_url": tags.get("dagster_run_url"),
            "trained_by": tags.get(approvals.TRAINED_BY),
            "model_sha256": tags.get("model_sha256"),
            "gates": tags.get("gates"),
        },
        "feature_service": tags.get("feature_service"),
        "training_set": training,
        "sources": sources,
        "labels_as_of": run_tags.get("lakeloop.labels_as_of"),
        "snapshots": snapshots(lakehouse, use_case, list(lineage.get("snapshot_sha256", [])),
                               checks, verify) if lineage else [],
        "approval": {"status": tags.get(approvals.STATUS), "decisions": decisions},
        "rollout": {"decision": tags.get("rollout.decision"),
                    "report": json.loads(rollout) if rollout else None,
                    "rolled_back": json.loads(tags["rolled_back"])
                    if "rolled_back" in tags else None},
        "champion_moves": [h for h in history if str(h.get("version")) == str(version)],
        "checks": [c.to_dict() for c in checks],
        "whole": all(c.ok for c in checks),
    }


def trace_request(resources: dict[str, Any], use_cases: list[UseCase], ident: str,
                  verify: bool = True) -> dict[str, Any]:
    """The latest logged answer to ``ident`` (a request id or an event key) and its chain;
    ``others`` lists any other answers logged under the same id."""
    found = find_records(resources["lakehouse"], use_cases, ident)
    if not found:
        where = ", ".join(str(request_log_dir(resources["lakehouse"], u)) for u in use_cases)
        raise TraceError(f"no logged request or event key {ident!r} in the request logs "
                         f"({where})")
    use_case, record = found[-1]
    answer = prediction(record)
    chain: dict[str, Any] = {"use_case": use_case.name, "prediction": answer}
    if record.get("model_version"):
        chain.update(model_chain(resources, use_case, str(record["model_version"]), verify))
    chain["others"] = [prediction(r) for _, r in found[:-1]]
    return chain


# --- text ------------------------------------------------------------------------------------

def render(chain: dict[str, Any]) -> str:
    lines: list[str] = []
    p = chain.get("prediction")
    if p:
        answer = (f"probability {p['probability']:.4f}, prediction {p['prediction']}"
                  if p.get("probability") is not None else f"refused: {p.get('error')}")
        lines += [f"prediction  {p['request_id']} (event {p['event_key']}, entity "
                  f"{p['entity_key']}) at {p['event_time']}",
                  f"  answer    {answer} (status {p['status']}, {p['predictor']}, "
                  f"v{p['model_version']}, {p['latency_ms']} ms)"]
        if p.get("inputs"):
            lines.append("  inputs    " + ", ".join(f"{k}={v}" for k, v in p["inputs"].items()))
        for r in p.get("reasons") or []:
            lines.append(f"  reason    {r['text']} ({r['feature']} {r['contribution']:+.3f})")
    m = chain.get("model")
    if m:
        lines += [f"model       {m['name']} v{m['version']} (gates {m['gates']}, trained by "
                  f"{m['trained_by']})",
                  f"  MLflow    run {m['run_id']} {m['run_url'] or ''}",
                  f"  registry  {m['model_version_url']}",
                  f"  Dagster   {m['dagster_run_url']}",
                  f"features    feature service {chain['feature_service']}"]
        t = chain["training_set"]
        lines.append(f"training    training_set v{t['version']} ({t['path']})")
        for s in chain["sources"]:
            lines.append(f"  read      {s['table']} v{s['version']}")
            for up in s["upstream"]:
                lines.append(f"    read    {up['table']} v{up['version']}")
        if chain["snapshots"]:
            lines.append(f"  raw       {len(chain['snapshots'])} snapshots, labels as of "
                         f"{chain['labels_as_of']}")
        for d in chain["approval"]["decisions"]:
            lines.append(f"approval    {d['decision']} by {d['by']} at {d['at']}: "
                         f"{d['reason']} (signature {d['signature']})")
        if chain["rollout"]["decision"]:
            lines.append(f"rollout     {chain['rollout']['decision']}")
        for move in chain["champion_moves"]:
            lines.append(f"champion    from {move['at']} ({move['reason']}; before: "
                         f"v{move['previous']})")
        for c in chain["checks"]:
            lines.append(f"{'ok' if c['ok'] else 'FAILED':<11} {c['what']}: {c['detail']}")
    if chain.get("others"):
        lines.append(f"({len(chain['others'])} earlier answers under the same id: --json)")
    return "\n".join(lines)
