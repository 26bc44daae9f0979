"""A model card per registered version: what it learnt from, how it did, who approved it."""

from __future__ import annotations

import json
from typing import Any


def _features(tags: dict[str, str]) -> list[str]:
    """Each input feature, and for a categorical one its categories (one 0/1 column each)."""
    features = json.loads(tags.get("features", "[]") or "[]")
    encoding = json.loads(tags.get("encoding", "{}") or "{}").get("categorical", {})
    lines = []
    for name in features:
        if name in encoding:
            levels = encoding[name]["levels"]
            other = encoding[name].get("other")
            lines.append(f"- `{name}`: categorical, {len(levels)} categories ("
                         + ", ".join(levels[:12]) + (", ..." if len(levels) > 12 else "")
                         + (f"; unknown ones count as {other}" if other else
                            "; an unknown one is refused") + ")")
        else:
            lines.append(f"- `{name}`: numeric (a missing value is XGBoost's to route)")
    return lines or ["- not recorded"]


def render(*, use_case, version: str, tags: dict[str, str], metrics: dict[str, float],
           gates: dict[str, dict[str, Any]], fairness_table: str, approval) -> str:
    lineage = json.loads(tags.get("lakeloop.source_versions", "{}") or "{}")
    lines = [
        f"# {use_case.title}: model version {version}",
        "",
        use_case.description,
        "",
        "## Model",
        f"- XGBoost ({tags.get('lakeloop.engine', '?')} on {tags.get('lakeloop.device', '?')}), "
        f"decision threshold {tags.get('threshold', '?')}: a probability at or above it is "
        "flagged as a likely default",
        f"- model file sha256 `{tags.get('model_sha256', '?')[:16]}`; portable ONNX export "
        f"max |difference| {tags.get('onnx_max_abs_diff', 'not exported yet')}",
        "",
        "## Features",
        *_features(tags),
        "",
        "## Data",
        f"- training set: Delta version {tags.get('lakeloop.training_set_version', '?')}, "
        f"feature service `{tags.get('lakeloop.feature_service', '?')}`",
        *[f"- `{table}`: Delta version {v}" for table, v in sorted(lineage.items())],
        f"- raw snapshots: {tags.get('lakeloop.snapshots', '?')} "
        f"(sha256 of their hashes `{tags.get('lakeloop.snapshots_sha256', '?')[:16]}`)",
        f"- outcomes: newest day loaded {tags.get('lakeloop.labels_as_of', '?')}; only events "
        f"whose outcomes had {tags.get('lakeloop.maturity_days', '?')} days to mature were "
        "used",
        f"- monitoring reference: the held-out rows (validation and test windows) from "
        f"{tags.get('reference_from', '?')}",
        f"- code: git `{tags.get('lakeloop.git_commit', '?')[:12]}`, Dagster run "
        f"`{tags.get('lakeloop.dagster_run_id', '?')}`",
        "",
        "## Performance (held-out latest window)",
        "| metric | value |",
        "|---|---:|",
        *[f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items())
          if k.startswith("test_") and v == v],
        "",
        "## Fairness",
        fairness_table or "no protected attributes",
        "",
        "## Gates",
        "| gate | verdict | why |",
        "|---|---|---|",
        *[f"| {name} | {'passed' if g['passed'] else '**failed**'} | {g['description']} |"
          for name, g in sorted(gates.items())],
        "",
        "## Approval",
    ]
    if not use_case.sensitive:
        lines.append("not required (the use case is not marked sensitive)")
    elif approval is None or approval.status == "pending":
        lines.append("**pending**: a sensitive use case needs a person's approval")
    else:
        lines.append(f"**{approval.status}** by {approval.by} at {approval.at}: "
                     f"{approval.reason}")
    if use_case.sensitive:
        lines += _decisions(use_case, tags)
    lines += ["", "## Audit trail",
              f"Every gate verdict, decision, promotion, rollout and retraining request of "
              f"{use_case.name}, with who, when and why: `lakeloop audit {use_case.name}` "
              f"(`--json` for machines); the append-only Delta table "
              f"`<data root>/{use_case.name}/governance/audit`."]
    return "\n".join(lines) + "\n"


def _decisions(use_case, tags: dict[str, str]) -> list[str]:
    """The policy and every signed decision (verified at promotion, not here)."""
    from lakeloop.deployment import approvals

    policy = use_case.approvals
    lines = ["", f"Needs {policy.required} distinct approval(s) from "
             + (", ".join(policy.approvers) if policy.approvers else "anyone who names "
                "themselves") + f"; trained by {tags.get(approvals.TRAINED_BY) or 'unknown'}, "
             "who is never enough alone."]
    try:
        decisions = approvals.records(tags)
    except approvals.ApprovalError as exc:
        return [*lines, "", f"**unreadable decisions**: {exc}"]
    if decisions:
        lines += ["", "| decision | by | at | reason |", "|---|---|---|---|",
                  *[f"| {d.decision} | {d.by} | {d.at} | {d.reason} |" for d in decisions]]
    return lines
