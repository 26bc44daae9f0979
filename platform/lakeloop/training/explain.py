"""What a model learnt, for a person: SHAP contributions per feature and the usual plots."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lakeloop.training.fit import TrainedModel

# What ``shap_importance`` returns: mean |SHAP| per feature (sorted, largest first), the
# per-row contributions (rows x features) and the feature values to colour them by.
ShapImportance = tuple[pd.DataFrame, np.ndarray, np.ndarray]


def shap_importance(model: TrainedModel, frame: pd.DataFrame, sample: int = 2000,
                    seed: int = 0) -> ShapImportance:
    """Mean |SHAP| per feature (XGBoost's exact tree contributions) on a sample; a categorical
    feature's contribution is the sum over its category columns. Also returns the per-row
    contributions and a value per feature to colour them by (a category's index)."""
    import xgboost as xgb

    part = frame.sample(min(sample, len(frame)), random_state=seed) if len(frame) else frame
    x = model.matrix(part)
    contribs = model.booster.predict(xgb.DMatrix(x, feature_names=model.encoding.columns),
                                     pred_contribs=True)[:, :-1]
    owners = np.array(model.encoding.feature_of_columns())
    by_feature = np.column_stack([contribs[:, owners == f].sum(axis=1)
                                  for f in model.features])
    values = np.column_stack([
        np.argmax(x[:, owners == f], axis=1).astype(float) if f in model.encoding.categorical
        else x[:, owners == f][:, 0] for f in model.features])
    return pd.DataFrame({"feature": model.features,
                         "mean_abs_shap": np.abs(by_feature).mean(axis=0)}).sort_values(
        "mean_abs_shap", ascending=False), by_feature, values


def load_plotting() -> None:
    """Import what the plots need (matplotlib on its Agg backend, the curves), ahead of
    their use: the training asset does it while the training set loads, when the JVM does
    the work, instead of after training (0.9 s of the asset's time, measured at 1M rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: F401


CURVE_POINTS = 2000  # a curve's points drawn: finer than the plot's pixels


def _thinned(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most CURVE_POINTS evenly spaced points of a curve (one per threshold can be one per
    test row), first and last kept."""
    if len(a) <= CURVE_POINTS:
        return a, b
    keep = np.unique(np.linspace(0, len(a) - 1, CURVE_POINTS).round().astype(int))
    return a[keep], b[keep]


def figures(model: TrainedModel, y: np.ndarray, p: np.ndarray, threshold: float
            ) -> dict[str, Any]:
    """ROC and precision-recall curves, the confusion matrix at the threshold and feature
    importance, as matplotlib figures keyed by file name (laid out)."""
    load_plotting()  # the Agg backend, chosen in one place (a no-op once imported)
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    out = {}
    fpr, tpr = _thinned(*roc_curve(y, p)[:2])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(fpr, tpr, lw=1.5)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    out["plots/roc.png"] = fig
    precision, recall = _thinned(*precision_recall_curve(y, p)[:2])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(recall, precision, lw=1.5)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    out["plots/precision_recall.png"] = fig
    flagged = p >= threshold
    matrix = np.array([[np.sum(~flagged & (y == 0)), np.sum(flagged & (y == 0))],
                       [np.sum(~flagged & (y == 1)), np.sum(flagged & (y == 1))]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["pred 0", "pred 1"],
           yticklabels=["true 0", "true 1"], title=f"Confusion at {threshold:.4f}")
    out["plots/confusion_matrix.png"] = fig
    by_column = model.booster.get_score(importance_type="gain")
    gain: dict[str, float] = {}
    for column, feature in zip(model.encoding.columns, model.encoding.feature_of_columns(),
                               strict=True):
        gain[feature] = gain.get(feature, 0.0) + by_column.get(column, 0.0)
    names = sorted(model.features, key=lambda f: gain.get(f, 0.0))
    fig, ax = plt.subplots(figsize=(5, 0.35 * len(names) + 1))
    ax.barh(names, [gain.get(f, 0.0) for f in names])
    ax.set(title="Feature importance (gain)")
    out["plots/feature_importance.png"] = fig
    for fig in out.values():
        fig.tight_layout()
    return out


def shap_figure(model: TrainedModel, shap_frame: ShapImportance) -> dict[str, Any]:
    """The SHAP summary (each sampled row's contribution per feature, coloured by the
    feature's value), keyed by file name as ``figures``'s are (laid out)."""
    load_plotting()
    import matplotlib.pyplot as plt

    importance, contribs, x = shap_frame
    order = list(importance["feature"])[::-1]
    fig, ax = plt.subplots(figsize=(5.5, 0.35 * len(order) + 1))
    points, rows, colours = [], [], []
    for row, name in enumerate(order):
        j = model.features.index(name)
        values = x[:, j]
        low, high = (np.nanmin(values), np.nanmax(values)) if np.isfinite(values).any() \
            else (0.0, 0.0)
        points.append(contribs[:, j])
        rows.append(np.full(len(values), row))
        colours.append((values - low) / ((high - low) or 1.0))
    if points:  # one collection for every feature's row of points: drawn once, not per row
        # Filled dots without an outline: the outline (the dot's own colour) doubled the time
        # to draw 60k points. s=12 keeps the dot as wide as the outlined s=4 one was (2 pt
        # across plus 0.75 pt of a 1.5 pt line each side).
        ax.scatter(np.concatenate(points), np.concatenate(rows), c=np.concatenate(colours),
                   cmap="coolwarm", vmin=0.0, vmax=1.0, s=12, linewidths=0, alpha=0.6)
    ax.set(yticks=range(len(order)), yticklabels=order, xlabel="SHAP value (log-odds)",
           title="SHAP summary (colour: feature value)")
    fig.tight_layout()
    return {"plots/shap_summary.png": fig}
