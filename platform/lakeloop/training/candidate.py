"""A candidate model: trained, thresholded, measured, judged by the gates that need no
retraining (performance, fairness, no regression), explained. Pure computation on a
training set already loaded: no MLflow, no Dagster (``registry`` records it)."""

from __future__ import annotations

import base64
import io
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lakeloop.evidence import Evidence, number
from lakeloop.monitoring import drift as drift_lib
from lakeloop.training import fit as training
from lakeloop.training import gates as gate_checks
from lakeloop.training.data import EVENT_TIMESTAMP, LABEL, TrainingData, fit, resolve
from lakeloop.training.encoding import Encoding
from lakeloop.training.explain import ShapImportance, figures, shap_figure, shap_importance
from lakeloop.training.fairness import GroupFairness, fairness
from lakeloop.usecase import UseCase

# The windows a candidate is judged on: rows no tree was fitted on. The training window is
# never scored (its metrics would only say how well the trees remember it, and scoring its
# rows cost as much as a fifth of the training).
EVALUATED = ("validation", "test")
INLINE = ("plots/roc.png", "plots/confusion_matrix.png")
INLINE_WIDTH = 300  # pixels: the UI's thumbnails of the plots, cut from the one rendering


class NotEnoughEvidence(ValueError):
    """Training cannot even choose a threshold; the message says why and what to do."""


@dataclass(frozen=True)
class Champion:
    """The current champion, as the no-regression gate compares with it."""

    version: str
    booster: Any
    encoding: Encoding
    threshold: float


@dataclass
class Candidate:
    model: training.TrainedModel
    encoding: Encoding
    requested: dict[str, Any]
    resolved: dict[str, Any]
    threshold: float
    metrics: dict[str, dict[str, float]]
    evidence: dict[str, Evidence]
    fairness: list[GroupFairness]
    verdicts: list[gate_checks.Verdict]
    reference_check: drift_lib.DriftVerdict
    shap: ShapImportance
    pngs: dict[str, bytes] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def test(self) -> dict[str, float]:
        return self.metrics["test"]

    @property
    def failed(self) -> list[str]:
        return [v.name for v in self.verdicts if not v.passed]

    def summary(self) -> str:
        return (f"recall {number(self.test['recall'])}, AUC {number(self.test['auc'])} on "
                f"{self.evidence['test']}; {self.resolved['engine']} on "
                f"{self.resolved['device']}")


def fairness_table(reports: list[GroupFairness]) -> str:
    """Every group's rates and whether they were judged, as Markdown."""
    lines = ["| attribute | group | rows | positives | approval rate | TPR | judged |",
             "|---|---|---:|---:|---:|---:|---|"]
    for rep in reports:
        for group, row in rep.groups.iterrows():
            tpr = number(row["tpr"], missing="")
            judged = ("yes" if row["tpr_judged"] else
                      f"rates only ({int(row['positives'])} positives)" if row["rate_judged"]
                      else f"no ({int(row['rows'])} rows)")
            lines.append(f"| {rep.attribute} | {group} | {int(row['rows'])} | "
                         f"{int(row['positives'])} | {row['approval_rate']:.3f} | {tpr} | "
                         f"{judged} |")
    return "\n".join(lines)


def _thumbnail(png: bytes, width: int = INLINE_WIDTH) -> bytes:
    """A smaller copy of a rendered PNG (no second rendering of the figure)."""
    from PIL import Image

    out = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        small = (image.resize((width, round(image.height * width / image.width)),
                              Image.Resampling.LANCZOS) if image.width > width else image)
        # zlib's default level: optimize's extra passes made the file 2% smaller in 3x the time
        small.save(out, format="PNG")
    return out.getvalue()


def _render(figs: dict) -> tuple[dict[str, bytes], dict[str, str]]:
    """The figures as PNG files, each rendered once, and the few shown inline in the UI as
    base64 thumbnails of those files."""
    import matplotlib.pyplot as plt

    pngs, images = {}, {}
    for name, fig in figs.items():
        buffer = io.BytesIO()
        # Laid out by tight_layout already, which leaves a placeholder layout engine behind:
        # savefig drew a figure that has one (or with bbox_inches="tight") once more, before
        # the drawing kept. Without it: one drawing, the same pixels.
        fig.set_layout_engine(None)
        fig.savefig(buffer, format="png", dpi=100)
        pngs[name] = buffer.getvalue()
        if name in INLINE:
            images[name] = base64.b64encode(_thumbnail(pngs[name])).decode()
        plt.close(fig)
    return pngs, images


def _reference_check(use_case: UseCase, split) -> drift_lib.DriftVerdict:
    """The validation window against the test window, feature by feature, as a day against
    the reference. The windows are judged as they are: the plan is made from the features
    alone, and adding the probabilities to them (which the plan never read) copied both."""
    plan = drift_lib.plan_columns(split.validation, list(use_case.feature_names),
                                  use_case.categorical_features)
    return drift_lib.judge(split.validation, split.test, plan, use_case.monitoring.drift,
                           ds="test window")


def _verdicts(use_case: UseCase, split, labels: dict, test: dict[str, float],
              threshold: float, fair: list[GroupFairness], evidence: dict[str, Evidence],
              champion: Champion | None) -> list[gate_checks.Verdict]:
    """The gates judged in the asset: performance, fairness and no regression against the
    champion."""
    gates = use_case.gates
    champion_auc = None
    if champion is not None:
        champion_auc = training.classification_metrics(
            labels["test"], champion.booster.inplace_predict(
                champion.encoding.encode_frame(split.test)), champion.threshold)["auc"]
    return [
        gate_checks.performance(test, threshold, gates, evidence=evidence["test"],
                                validation=evidence["validation"]),
        gate_checks.fairness(fair, gates),
        gate_checks.no_regression(test["auc"], champion_auc,
                                  None if champion is None else champion.version, gates,
                                  evidence["test"])]


def train_candidate(session, data: TrainingData, use_case: UseCase,
                    requested: dict[str, Any],
                    champion: Champion | Future[Champion | None] | None) -> Candidate:
    """Train on ``data`` with the run's configuration, choose the decision threshold on the
    validation window, and judge the newest window. ``champion`` may still be on its way
    (a future): it is waited for once the model is trained, before anything is measured."""
    gates, split = use_case.gates, data.split
    resolved = resolve(use_case, requested, len(split.train))
    encoding = Encoding.for_use_case(use_case, split.train)
    started = time.perf_counter()
    model = fit(session, data, resolved, encoding)
    seconds = {"train": time.perf_counter() - started, "load": data.load_seconds}
    # The champion's lookup (and MLflow's first import with it) ends here, before any
    # metric: scikit-learn looks for polars in sys.modules, and MLflow's import was seen
    # leaving it there half-initialised while a short fit's AUC was computed
    # ("partially initialized module 'polars' has no attribute 'DataFrame'").
    if isinstance(champion, Future):
        champion = champion.result()
    preds = {"validation": model.predict_validation(split.validation),
             "test": model.predict(split.test)}
    labels = {name: getattr(split, name)[LABEL].to_numpy() for name in EVALUATED}
    evidence = {name: Evidence.of(values) for name, values in labels.items()}
    if evidence["validation"].positives == 0:
        raise NotEnoughEvidence(
            f"not enough evidence to train: the validation window "
            f"({split.bounds(EVENT_TIMESTAMP)['validation']}) holds {evidence['validation']}, "
            f"so no decision threshold can be chosen; {gate_checks.MORE_EVIDENCE}")
    # The reference's own noise: its two windows judged against each other as a day
    # against the reference will be. Drift between them would make every report noisy.
    # It and SHAP run beside everything after training: the reference's sorts and XGBoost's
    # SHAP release the GIL, while the metrics and drawing the plots hold it (serially, SHAP
    # left the second core idle while the plots were drawn). Not during training: XGBoost's
    # threads keep both cores busy then.
    with ThreadPoolExecutor(2, thread_name_prefix="beside-the-gates") as pool:
        reference = pool.submit(_reference_check, use_case, split)
        explained = pool.submit(shap_importance, model, split.test)
        threshold = training.choose_threshold(
            labels["validation"], preds["validation"],
            min(gates.recall_min + use_case.model.threshold_margin, 1.0))
        metrics = {name: training.classification_metrics(labels[name], preds[name], threshold)
                   for name in EVALUATED}
        fair = fairness(split.test, preds["test"], labels["test"], threshold,
                        use_case.protected_attributes,
                        min_group_rows=gates.fairness_min_group_rows,
                        min_group_positives=gates.fairness_min_group_positives)
        verdicts = _verdicts(use_case, split, labels, metrics["test"], threshold, fair,
                             evidence, champion)
        started = time.perf_counter()
        pngs, images = _render(figures(model, labels["test"], preds["test"], threshold))
        shap = explained.result()
        shap_png, shap_image = _render(shap_figure(model, shap))
        pngs, images = {**pngs, **shap_png}, {**images, **shap_image}
        seconds["explain"] = time.perf_counter() - started
        reference_check = reference.result()
    return Candidate(model, encoding, requested, resolved, threshold, metrics, evidence, fair,
                     verdicts, reference_check, shap, pngs, images, seconds)
