"""The reference a model's live traffic is compared with: its held-out rows.

Training rows are what the model fitted: their predictions are more confident than any new
row's, so a reference made of them makes every live day look drifted in its predictions (and
training rows look "undrifted by construction"). The reference is instead the validation and
test windows of the model's training set (rows no tree was fitted on, and newer than those
it was), recorded on the model version when it is registered (``reference_from``, with the
training set's Delta version) so that every report of that version reads the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

REFERENCE_FROM_TAG = "reference_from"
EVENT_TIMESTAMP = "event_timestamp"
LABEL = "label"


@dataclass(frozen=True)
class Reference:
    """The held-out rows of one model version, scored by it."""

    model_version: str
    training_set_version: int
    start: str
    threshold: float
    frame: pd.DataFrame  # features, probability, label, protected attributes

    @property
    def rows(self) -> int:
        return len(self.frame)


def load_reference(session, lakehouse, mlflow, use_case, version: str) -> Reference:
    """The reference of ``version``: its training set's held-out windows, scored."""
    from lakeloop import keys
    from lakeloop.deployment.runtime import load_booster
    from lakeloop.lakehouse.tables import read_pandas
    from lakeloop.training.fit import time_split

    tags = mlflow.client().get_model_version(use_case.name, version).tags
    ts_version = int(tags["training_set_version"])
    path = lakehouse.table(keys.key(use_case, keys.TRAINING, "training_set"))
    columns = [*use_case.feature_names, LABEL, EVENT_TIMESTAMP,
               *use_case.protected_attributes]
    frame = read_pandas(session, path, ts_version, columns)
    if REFERENCE_FROM_TAG in tags:
        start = pd.Timestamp(tags[REFERENCE_FROM_TAG])
    else:  # registered before references were recorded: the same split, recomputed
        split = time_split(frame, EVENT_TIMESTAMP, use_case.model.validation_fraction,
                           use_case.model.test_fraction)
        start = split.validation[EVENT_TIMESTAMP].min()
    held_out = frame[frame[EVENT_TIMESTAMP] >= start].reset_index(drop=True)
    booster, config = load_booster(mlflow, use_case.name, version)
    held_out["probability"] = booster.inplace_predict(config["encoding"].encode_frame(held_out))
    return Reference(version, ts_version, str(start), float(config["threshold"]), held_out)
