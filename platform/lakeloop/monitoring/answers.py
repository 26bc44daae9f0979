"""The live answers of a window of days, as monitoring reads them from the inference log."""

from __future__ import annotations

import pandas as pd

from lakeloop.spark import fold

# Predictors whose answers reached clients; a shadow's mirrored answers did not, and would
# count every request twice.
LIVE_PREDICTORS = ("champion", "direct")


def answer_keys(use_case) -> list:
    """Where a use case's answers are: the inference log (online) and the batch scores."""
    from lakeloop import keys
    out = []
    if use_case.serving.online:
        out.append(keys.key(use_case, keys.MONITORING, "inference_log"))
    if use_case.serving.batch:
        out.append(keys.key(use_case, keys.DEPLOYMENT, "batch_scores"))
    return out


def live_answers(session, lakehouse, use_case, first: str, last: str, *,
                 with_outcomes: bool = False) -> pd.DataFrame:
    """Every answer the use case gave for [first, last] (pandas): day, model version,
    features, probability and decision; from the inference log (clients' answered live
    requests) and the batch scores, as the use case serves (an event answered both ways
    counts once, as answered online). ``with_outcomes`` adds the event's outcome (null while
    unknown) and protected attributes, joined on the event key."""
    from pyspark.sql import functions as F

    from lakeloop import keys
    from lakeloop.lakehouse.tables import is_delta_table, read_window

    key = use_case.events.key
    columns = ["ds", "model_version", key, *use_case.feature_names, "probability",
               "prediction"]
    extra = ["label", *use_case.protected_attributes] if with_outcomes else []
    parts = []
    log_path = lakehouse.table(keys.key(use_case, keys.MONITORING, "inference_log"))
    if use_case.serving.online and is_delta_table(log_path):
        parts.append(
            read_window(session, log_path, first, last)
            .where((F.col("status") == 200) & F.col("predictor").isin(*LIVE_PREDICTORS))
            .select(F.col("ds").cast("string").alias("ds"), "model_version",
                    F.col("request_key").alias(key), *use_case.feature_names,
                    "probability", "prediction", F.lit(0).alias("_source")))
    batch_path = lakehouse.table(keys.key(use_case, keys.DEPLOYMENT, "batch_scores"))
    if use_case.serving.batch and is_delta_table(batch_path):
        parts.append(
            read_window(session, batch_path, first, last)
            .select(F.col("ds").cast("string").alias("ds"), "model_version", F.col(key),
                    *use_case.feature_names, "probability", "prediction",
                    F.lit(1).alias("_source")))
    if not parts:  # nothing scored yet
        return pd.DataFrame(columns=[*columns, *extra])
    answers = fold(parts, lambda a, b: a.unionByName(b))
    if len(parts) > 1:
        from pyspark.sql import Window

        # An answer without a key (a request from before keys were required) stands alone.
        event = F.when(F.coalesce(F.col(key), F.lit("")) == "",
                       F.monotonically_increasing_id().cast("string")).otherwise(F.col(key))
        first_answer = Window.partitionBy(event).orderBy("_source")
        answers = (answers.withColumn("_n", F.row_number().over(first_answer))
                   .where("_n = 1").drop("_n"))
    answers = answers.drop("_source")
    if with_outcomes:
        labeled = read_window(session, lakehouse.table(
            keys.key(use_case, keys.LAKEHOUSE, use_case.labeled_table)), first, last)
        answers = answers.join(labeled.select(key, "label", *use_case.protected_attributes),
                               key, "left")
    return answers.toPandas()
