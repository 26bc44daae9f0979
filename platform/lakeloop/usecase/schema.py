"""The data side of a use-case file: columns and their contracts, sources, the entity, the
label, the features, the model and its gates."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ColumnType = Literal["string", "int", "double", "boolean", "timestamp", "date"]
# Where a value sits in a use-case file: keys and list indexes from the top.
KeyPath = tuple[str | int, ...]
NUMERIC_TYPES = {"int", "double", "boolean"}


class FieldError(ValueError):
    """A cross-field problem raised by a model validator, with the place it belongs to: ``path``
    below the model being validated. Without it pydantic would blame the whole model, and the
    error would point at the model's first line instead of the line that holds the mistake."""

    def __init__(self, path: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.path = tuple(path)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    """The contract of one column: type, nullability, range, allowed values, uniqueness.

    A text column is a categorical feature when its categories are known: a closed list
    (``allowed``), or learnt from the training data, keeping those with at least
    ``min_frequency`` of the rows. ``other`` names the category anything else falls into
    (in serving too); without it an unknown category is refused.
    """

    type: ColumnType
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: tuple[str | int | float | bool, ...] | None = None
    unique: bool = False
    description: str = ""
    # The largest share of a day's rows that may be missing (null) in this column.
    max_null_rate: float | None = Field(default=None, ge=0, le=1)
    min_frequency: float | None = Field(default=None, gt=0, lt=1)
    other: str | None = None

    @model_validator(mode="after")
    def _categories(self) -> Column:
        if self.min_frequency is not None and self.type != "string":
            raise FieldError(("min_frequency",), "min_frequency learns the categories of a "
                             "string column; this column is " + self.type)
        if self.min_frequency is not None and self.allowed is not None:
            raise FieldError(("min_frequency",), "a column has either a closed list of "
                             "categories (allowed) or learnt ones (min_frequency), not both")
        if self.other is not None and self.allowed is None and self.min_frequency is None:
            raise FieldError(("other",), "other names where unknown categories go: declare "
                             "the categories first (allowed or min_frequency)")
        return self

    @property
    def categorical(self) -> bool:
        """Compared, encoded and validated as categories rather than as numbers."""
        return self.type == "string" or self.allowed is not None


Severity = Literal["warn", "error"]


class SourceChecks(_Strict):
    """Table-level data contract of a source, checked on every window it loads.

    Errors block everything downstream; warnings show in the UI and let the run go on.
    """

    quarantine_rate_warn: float = Field(default=0.01, ge=0, le=1)
    quarantine_rate_error: float = Field(default=0.10, ge=0, le=1)
    freshness_hours: float = Field(
        default=48, gt=0,
        description="the newest event of day D's snapshot is at most this old at D's end")
    freshness_severity: Severity = "warn"
    row_count_window_days: int = Field(default=14, ge=1)
    row_count_min_ratio: float = Field(default=0.5, ge=0)
    row_count_max_ratio: float = Field(default=2.0, gt=0)
    row_count_severity: Severity = "warn"
    unique_across_days_severity: Severity = "warn"
    unique_lookback_days: int = Field(
        default=30, ge=1, description="how far back a key is looked for on other days")
    null_rate_severity: Severity = "warn"


class Source(_Strict):
    """A feed of daily snapshot files dropped in ``<data root>/landing/<use case>/<source>/``."""

    role: Literal["events", "labels"]
    format: Literal["csv", "parquet"] = "csv"
    key: str
    event_time: str
    columns: dict[str, Column]
    checks: SourceChecks = SourceChecks()
    description: str = ""
    # Texts that mean "no value" in this feed's files (after trimming spaces).
    null_values: tuple[str, ...] = ("",)
    # A day without a file: ``fail`` stops the day (a feed that should always deliver);
    # ``empty`` means nothing happened that day (no outcomes arrived). Default: fail for
    # events, empty for labels.
    missing_file: Literal["fail", "empty"] | None = None

    @property
    def missing_file_means_empty(self) -> bool:
        return (self.missing_file or ("empty" if self.role == "labels" else "fail")) == "empty"

    @model_validator(mode="after")
    def _key_and_time_are_columns(self) -> Source:
        for what, col in (("key", self.key), ("event_time", self.event_time)):
            if col not in self.columns:
                raise FieldError((what,), f"{what} {col!r} is not one of the declared columns")
        if self.columns[self.event_time].type != "timestamp":
            raise FieldError(("columns", self.event_time, "type"),
                             f"event_time {self.event_time!r} must have type timestamp")
        return self


class Entity(_Strict):
    name: str
    join_key: str
    description: str = ""


class Label(_Strict):
    """The outcome a model predicts. Outcomes of an event are final ``maturity_days`` after
    it (a default shows up weeks after a repayment would): training, the held-out windows and
    live performance use only events that old, so quick outcomes never stand in for all."""

    column: str
    positive: int | str = 1
    maturity_days: int = Field(default=0, ge=0, le=3650)


class EntityFeatures(_Strict):
    ttl_days: int = Field(default=365, gt=0)
    columns: tuple[str, ...]
    derived: dict[str, str] = Field(default_factory=dict)


class Features(_Strict):
    """Entity features come from the feature store; request features arrive with the request.

    ``version`` names the feature service models train and serve with (``<use case>_v<n>``);
    bump it when the feature set changes, so models of the old version keep theirs.
    """

    version: int = Field(default=1, ge=1)
    entity: EntityFeatures
    request: tuple[str, ...] = ()


class ModelConfig(_Strict):
    params: dict[str, Any] = Field(default_factory=dict)
    num_boost_round: int = Field(default=400, gt=0)
    early_stopping_rounds: int = Field(default=30, gt=0)
    # A fixed seed makes training reproducible; null draws a new seed every run (and the
    # reproducibility gate will say so).
    seed: int | None = 42
    # xgboost trains on the driver; spark trains with XGBoost's Spark estimator on the
    # cluster; auto switches to spark from spark_min_rows training rows.
    engine: Literal["auto", "xgboost", "spark"] = "auto"
    spark_min_rows: int = Field(default=20_000_000, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    validation_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    training_window_days: int = Field(default=365, gt=0)
    threshold_margin: float = Field(default=0.02, ge=0, lt=0.2)


class Gates(_Strict):
    recall_min: float = Field(default=0.9, ge=0, le=1)
    auc_min: float = Field(default=0.7, ge=0, le=1)
    f1_min: float = Field(default=0.0, ge=0, le=1)
    # The candidate may trail the champion by at most this much AUC on the same window.
    regression_tolerance: float = Field(default=0.02, ge=0, le=1)
    onnx_max_abs_diff: float = Field(default=1e-5, gt=0)
    fairness_ratio_min: float = Field(default=0.8, ge=0, le=1)
    tpr_gap_max: float = Field(default=0.1, ge=0, le=1)
    fairness_min_group_rows: int = Field(default=100, ge=1)
    fairness_min_group_positives: int = Field(default=50, ge=1)
    # The least evidence a verdict rests on: the test window (and the validation window the
    # threshold is chosen on) must hold at least this many positives and negatives.
    min_positives: int = Field(default=30, ge=1)
    min_negatives: int = Field(default=30, ge=1)
