"""The live answers of a window of days, as monitoring reads them from the inference log."""

from __future__ import annotations

import pandas as pd

# Predictors whose answers reached clients; a shadow's mirrored answers did not, and would
# count every request twice.
LIVE_PREDICTORS = ("champion", "direct")


def live_answers(session, lakehouse, use_case, first: str, last: str, *,
                 with_outcomes: bool = False) -> pd.DataFrame:
    """Every answered live request of [first, last] (pandas): day, model version, features,
    probability and decision; ``with_outcomes`` adds the event's outcome (null while unknown)
    and protected attributes, joined on the event key."""
    from pyspark.sql import functions as F

    from lakeloop import keys
    from lakeloop.lakehouse import is_delta_table, read_window

    key = use_case.events.key
    columns = ["ds", "model_version", key, *use_case.feature_names, "probability",
               "prediction"]
    extra = ["label", *use_case.protected_attributes] if with_outcomes else []
    log_path = lakehouse.table(keys.key(use_case, keys.MONITORING, "inference_log"))
    if not is_delta_table(log_path):  # nothing served yet
        return pd.DataFrame(columns=[*columns, *extra])
    answers = (read_window(session, log_path, first, last)
               .where((F.col("status") == 200) & F.col("predictor").isin(*LIVE_PREDICTORS))
               .select(F.col("ds").cast("string").alias("ds"), "model_version",
                       F.col("request_key").alias(key), *use_case.feature_names,
                       "probability", "prediction"))
    if with_outcomes:
        labeled = read_window(session, lakehouse.table(
            keys.key(use_case, keys.LAKEHOUSE, use_case.labeled_table)), first, last)
        answers = answers.join(labeled.select(key, "label", *use_case.protected_attributes),
                               key, "left")
    return answers.toPandas()
