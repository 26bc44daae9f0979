"""The challenger becomes champion: after its approval (a sensitive use case), and, when the
use case is served online, only through a rollout whose every check passes on the live
graph (locally or on the cluster). Any failure puts the endpoint back on the champion alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lakeloop import keys
from lakeloop.deployment import approvals, promotion, rollout
from lakeloop.deployment.runtime import (
    Runtime,
    apply_on_cluster,
    cluster_predictors,
    render,
    serve_champion,
)
from lakeloop.governance import notices, record
from lakeloop.tracking import CHALLENGER, CHAMPION

STRATEGIES = ("canary", "shadow", "ab")


class RolledBack(RuntimeError):
    """The rollout failed: the champion keeps the traffic; ``report`` says why."""

    def __init__(self, message: str, report: rollout.Report, challenger: str, champion: str):
        super().__init__(message)
        self.report, self.challenger, self.champion = report, challenger, champion


@dataclass
class Promotion:
    """A challenger made champion: how, with which checks, and where it serves."""

    version: str
    previous: str | None
    card: str
    serving: str  # local, kubernetes or batch
    endpoint: str = ""
    report: rollout.Report | None = None
    manifests: dict[str, str] = field(default_factory=dict)
    approval: approvals.Approval | None = None

    @property
    def decision(self) -> str:
        if self.serving == "batch":
            return "promoted; batch scoring uses it from its next run"
        return (f"promoted after validation and {self.report.strategy}" if self.report
                else "promoted (first model: nothing to compare with)")


def challenger_to_promote(rt: Runtime) -> str:
    """The challenger's version, if it may be promoted (raises PromotionError otherwise)."""
    current = rt.mlflow.version_by_alias(rt.use_case.name, CHALLENGER)
    if current is None:
        raise promotion.PromotionError(f"{rt.use_case.name} has no challenger to promote")
    version = str(current.version)
    promotion.check_promotable(rt.mlflow, rt.use_case, version)
    return version


def _make_champion(rt: Runtime, version: str, reason: str) -> tuple[promotion.Move, str,
                                                                   approvals.Approval | None]:
    use_case = rt.use_case
    move = promotion.to_champion(rt.mlflow, use_case, version, reason=reason)
    card = promotion.log_card(rt.mlflow, use_case, version)
    decision = (approvals.read(rt.mlflow.client(), use_case.name, version)
                if use_case.sensitive else None)
    return move, card, decision


def write_manifests(rt: Runtime, previous: str, version: str, out_dir: Path) -> dict[str, str]:
    """The rollout's SeldonDeployments (canary, shadow, A/B), as files beside the asset."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for strategy in STRATEGIES:
        path = out_dir / f"v{version}-{strategy}.yaml"
        path.write_text(yaml.safe_dump(render(rt, strategy, previous, version,
                                              rt.use_case.rollout.canary_traffic),
                                       sort_keys=False))
        out[strategy] = str(path)
    return out


def _roll_out(rt: Runtime, previous: str, version: str) -> rollout.Report:
    """Validate the challenger beside the champion, then split (or mirror) traffic."""
    use_case, cluster = rt.use_case, rt.serving.kubernetes
    log_dir = rt.lakehouse.path(keys.key(use_case, keys.MONITORING, "requests"))
    instances = rollout.recent_instances(log_dir, use_case, use_case.rollout.replay_requests)
    if not cluster:
        report, champ, chall = rollout.validate(rt, previous, version, instances)
        if report.passed:
            rollout.canary(rt, report, champ, chall, instances)
        return report
    try:
        # The challenger first joins as a shadow (mirrored traffic, answers discarded): it
        # is validated before it takes any traffic.
        manifest = apply_on_cluster(rt, "shadow", previous, version)
        report, champ, chall = rollout.validate(
            rt, previous, version, instances,
            predictors=cluster_predictors(rt, manifest, previous, version))
        if report.passed:
            manifest = apply_on_cluster(rt, use_case.rollout.strategy, previous, version,
                                        use_case.rollout.canary_traffic)
            rollout.canary(rt, report, champ, chall, instances,
                           url=rt.serving.deployment_url(manifest))
        return report
    except Exception:  # whatever broke, the champion alone keeps the traffic
        apply_on_cluster(rt, "champion", previous)
        raise


def _record_promotion(rt: Runtime, done: Promotion, run_id: str) -> Promotion:
    name = rt.use_case.name
    record(rt.lakehouse, rt.use_case, notices.promoted(
        name, done.version, done.previous, done.decision,
        model_url=rt.mlflow.model_version_url(name, done.version), endpoint=done.endpoint,
        run_id=run_id, run_url=rt.lakehouse.run_url(run_id) if run_id else ""))
    return done


def promote(rt: Runtime, version: str, *, out_dir: Path, reason: str,
            run_id: str = "") -> Promotion:
    """Make ``version`` champion: at once for a batch-scored use case or a first model; after
    a passing rollout otherwise (raises RolledBack, the champion restored, when it fails).
    Either outcome lands in the audit trail (``run_id``: the Dagster run deciding it)."""
    use_case, mlflow = rt.use_case, rt.mlflow
    if not use_case.serving.online:  # scored in batches: no endpoint to roll out on
        move, card, decision = _make_champion(rt, version, reason)
        return _record_promotion(rt, Promotion(version, move.previous, card, "batch",
                                               approval=decision), run_id)
    current = mlflow.version_by_alias(use_case.name, CHAMPION)
    previous = None if current is None else str(current.version)
    report, manifests = None, {}
    cluster = rt.serving.kubernetes
    if previous is not None and previous != version:
        manifests = write_manifests(rt, previous, version, out_dir)
        report = _roll_out(rt, previous, version)
        promotion.record_rollout(mlflow, use_case, version, report)
        if not report.passed:  # the endpoint goes back to the champion alone
            if cluster:
                apply_on_cluster(rt, "champion", previous)
            else:
                serve_champion(rt, previous)
            record(rt.lakehouse, use_case, notices.rolled_back(
                use_case.name, version, previous, report.reasons,
                {c.name: f"{c.value:.4g} (limit {c.limit:.4g}, "
                         f"{'passed' if c.passed else 'failed'})" for c in report.checks},
                model_url=mlflow.model_version_url(use_case.name, version), run_id=run_id,
                run_url=rt.lakehouse.run_url(run_id) if run_id else ""))
            raise RolledBack(f"{use_case.name} v{version} was rolled back; champion "
                             f"v{previous} keeps the traffic: " + "; ".join(report.reasons),
                             report, version, previous)
    move, card, decision = _make_champion(rt, version, reason)
    if cluster:
        endpoint = rt.serving.deployment_url(apply_on_cluster(rt, "champion", version))
    else:
        endpoint = serve_champion(rt, version)[0].predictions_url
    return _record_promotion(rt, Promotion(version, move.previous, card,
                                           "kubernetes" if cluster else "local", endpoint,
                                           report, manifests, decision), run_id)


def rollback(rt: Runtime, *, by: str, reason: str):
    """The previous champion back in the registry and, when a local endpoint serves the use
    case, on that endpoint too: one action."""
    from lakeloop.deployment.runtime import endpoint_name, ensure_champion

    move = promotion.rollback(rt.mlflow, rt.use_case, by=by, reason=reason)
    name = rt.use_case.name
    record(rt.lakehouse, rt.use_case, notices.rollback(
        name, move.version, move.previous or "", by, reason, move.at,
        model_url=rt.mlflow.model_version_url(name, move.version)))
    endpoint = None
    if rt.serving.endpoint(endpoint_name(rt.use_case)) is not None:
        endpoint, _ = ensure_champion(rt)
    return move, endpoint


def decide(mlflow, lakehouse, use_case, version: int, decision: str, by: str, reason: str):
    """Record a person's decision on the model version (MLflow tags, model card, the audit
    trail) and return the approval asset's materialisation that carries it into Dagster
    (and the sensor)."""
    import dagster as dg

    done = approvals.record(mlflow.client(), use_case, str(version), decision, by, reason)
    promotion.log_card(mlflow, use_case, str(version))
    record(lakehouse, use_case, notices.decision(
        use_case.name, str(version), decision, done.by, done.at, done.reason, done.status,
        model_url=mlflow.model_version_url(use_case.name, version)))
    return dg.AssetMaterialization(
        asset_key=keys.key(use_case, keys.DEPLOYMENT, "approval"),
        description=f"v{version} {decision} by {done.by}: {done.reason} (now {done.status})",
        metadata={
            "model_version": dg.MetadataValue.int(int(version)),
            "decision": dg.MetadataValue.text(decision),
            "by": dg.MetadataValue.text(done.by),
            "status": dg.MetadataValue.text(done.status),
            "at": dg.MetadataValue.text(done.at),
            "reason": dg.MetadataValue.text(done.reason),
        })
