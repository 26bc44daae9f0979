"""Moving the registry's aliases: challenger after the gates, champion after approval (for a
sensitive use case), and rollback to the previous champion in one action."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lakeloop.deployment import approvals
from lakeloop.tracking import CHALLENGER, CHAMPION, MlflowResource, muted_stderr
from lakeloop.training import model_card
from lakeloop.training.registry import gates_of
from lakeloop.usecase import UseCase

PREVIOUS = "lakeloop.previous_champion"
HISTORY = "lakeloop.champion_history"


class PromotionError(RuntimeError):
    """A promotion cannot happen; the message says why and what to do."""


@dataclass(frozen=True)
class Move:
    alias: str
    version: str
    previous: str | None
    at: str = ""  # when the alias moved (UTC), for the audit trail


def card(mlflow: MlflowResource, use_case: UseCase, version: str) -> str:
    client = mlflow.client()
    mv = client.get_model_version(use_case.name, version)
    if mv.run_id is None:
        raise ValueError(f"{use_case.name} v{version} was registered without an MLflow run")
    run = client.get_run(mv.run_id)
    fairness = ""
    try:
        fairness = mlflow.setup().artifacts.load_text(f"runs:/{mv.run_id}/fairness.md")
    except Exception:  # older versions did not log it
        fairness = ""
    return model_card.render(
        use_case=use_case, version=version, tags={**run.data.tags, **mv.tags},
        metrics=run.data.metrics, gates=gates_of(mv.tags), fairness_table=fairness,
        approval=approvals.read(client, use_case.name, version) if use_case.sensitive else None)


def log_card(mlflow: MlflowResource, use_case: UseCase, version: str) -> str:
    """Render the version's model card, log it to its MLflow run and return it."""
    text = card(mlflow, use_case, version)
    client = mlflow.client()
    mv = client.get_model_version(use_case.name, version)
    with tempfile.TemporaryDirectory() as tmp, muted_stderr():
        path = Path(tmp) / "model_card.md"
        path.write_text(text)
        client.log_artifact(mv.run_id, str(path))
    return text


def to_challenger(mlflow: MlflowResource, use_case: UseCase, version: str) -> Move:
    client = mlflow.client()
    mv = client.get_model_version(use_case.name, version)
    failed = [g for g, v in gates_of(mv.tags).items() if not v["passed"]]
    if failed or mv.tags.get("gates", "").startswith("failed"):
        raise PromotionError(f"{use_case.name} v{version} failed gates {failed or mv.tags['gates']}"
                             ": it cannot become challenger")
    previous = mlflow.version_by_alias(use_case.name, CHALLENGER)
    client.set_model_version_tag(use_case.name, version, "gates", "passed")
    if use_case.sensitive and approvals.STATUS not in mv.tags:
        client.set_model_version_tag(use_case.name, version, approvals.STATUS,
                                     approvals.PENDING)
    client.set_registered_model_alias(use_case.name, CHALLENGER, version)
    return Move(CHALLENGER, version, None if previous is None else str(previous.version))


def record_rollout(mlflow: MlflowResource, use_case: UseCase, version: str, report) -> None:
    """The rollout's checks and decision, with their numbers, on the model version."""
    client = mlflow.client()
    client.set_model_version_tag(use_case.name, version, "rollout", report.to_json()[:4900])
    client.set_model_version_tag(use_case.name, version, "rollout.decision",
                                 "promoted" if report.passed else "rolled back")


def check_promotable(mlflow: MlflowResource, use_case: UseCase, version: str) -> None:
    """Raise PromotionError unless ``version`` passed its gates and, for a sensitive use
    case, a person approved it."""
    client = mlflow.client()
    mv = client.get_model_version(use_case.name, version)
    if mv.tags.get("gates") != "passed":
        raise PromotionError(f"{use_case.name} v{version} has not passed its gates "
                             f"({mv.tags.get('gates', 'unknown')})")
    if use_case.sensitive:
        try:
            verdict = approvals.check(client, use_case, version, tags=mv.tags)
        except approvals.ApprovalError as exc:
            raise PromotionError(str(exc)) from None
        if verdict.rejected:
            raise PromotionError(f"{use_case.name} challenger {verdict.reason}; a rejection "
                                 "is final: train a new candidate")
        if not verdict.promotable:
            raise PromotionError(
                f"{use_case.name} is sensitive and challenger v{version} awaits a person's "
                f"approval ({verdict.reason}): `lakeloop approve {use_case.name} "
                f"{version} --by <you> --reason <why>`, or launch the {use_case.name}_approval "
                "job from the Dagster UI")


def to_champion(mlflow: MlflowResource, use_case: UseCase, version: str, *,
                reason: str = "promoted") -> Move:
    check_promotable(mlflow, use_case, version)
    client = mlflow.client()
    current = mlflow.version_by_alias(use_case.name, CHAMPION)
    previous = None if current is None else str(current.version)
    if previous == version:
        return Move(CHAMPION, version, None)
    model = client.get_registered_model(use_case.name)
    history = json.loads(model.tags.get(HISTORY, "[]"))
    history.append({"version": version, "previous": previous, "reason": reason,
                    "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    client.set_registered_model_alias(use_case.name, CHAMPION, version)
    if previous is not None:
        client.set_registered_model_tag(use_case.name, PREVIOUS, previous)
    client.set_registered_model_tag(use_case.name, HISTORY, json.dumps(history[-50:]))
    return Move(CHAMPION, version, previous)


def rollback(mlflow: MlflowResource, use_case: UseCase, *, by: str, reason: str) -> Move:
    """Champion goes back to the previous champion, in one action, with who and why."""
    if not by.strip() or not reason.strip():
        raise PromotionError("a rollback needs --by and --reason: they go in the audit trail")
    client = mlflow.client()
    model = client.get_registered_model(use_case.name)
    previous = model.tags.get(PREVIOUS)
    current = mlflow.version_by_alias(use_case.name, CHAMPION)
    if previous is None or current is None:
        raise PromotionError(f"{use_case.name} has no previous champion to roll back to")
    history = json.loads(model.tags.get(HISTORY, "[]"))
    history.append({"version": previous, "previous": str(current.version),
                    "reason": f"rollback by {by}: {reason}",
                    "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    client.set_registered_model_alias(use_case.name, CHAMPION, previous)
    client.set_registered_model_tag(use_case.name, PREVIOUS, str(current.version))
    client.set_registered_model_tag(use_case.name, HISTORY, json.dumps(history[-50:]))
    client.set_model_version_tag(use_case.name, str(current.version), "rolled_back",
                                 json.dumps({"by": by, "reason": reason,
                                             "at": history[-1]["at"]}))
    return Move(CHAMPION, previous, str(current.version), history[-1]["at"])
