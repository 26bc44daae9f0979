"""Use cases are configuration: one YAML file declares a tabular binary-classification problem.

A use-case file names its entity, its sources (an ``events`` feed of the rows a model scores
and a ``labels`` feed of outcomes that arrive later), the data contract of every column, the
features, the protected attributes used only for fairness, and the thresholds of the gates and
monitors. Loading validates all of it and reports problems with the file's line numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ColumnType = Literal["string", "int", "double", "boolean", "timestamp", "date"]
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


class DriftMonitoring(_Strict):
    """Drift as a decision with a known false-alarm rate (see lakeloop.monitoring.drift)."""

    # The chance that a day with no change is judged drifted (all columns together).
    alpha: float = Field(default=0.01, gt=0, lt=0.5)
    # The smallest change that matters, for a significant column to count as drifted:
    # numeric columns in reference standard deviations (normed Wasserstein distance),
    # categorical and binary columns as the share of rows that moved category.
    min_shift_sd: float = Field(default=0.1, ge=0)
    min_share_moved: float = Field(default=0.05, ge=0, le=1)
    # The day drifts when at least this share of the features drifts (and at least one).
    feature_share: float = Field(default=0.0, ge=0, le=1)
    # A drifted prediction makes the day drifted on its own.
    prediction: bool = True
    # Fewer rows than this in a day: judged with the days before it, up to max_window_days.
    min_rows: int = Field(default=200, ge=1)
    max_window_days: int = Field(default=7, ge=1, le=90)


class PerformanceMonitoring(_Strict):
    """Performance in production: measured once outcomes mature, estimated before."""

    # A day is degraded when its recall is significantly (at level alpha) below this.
    recall_min: float = Field(default=0.85, ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    # A day is judged on at least this many positives with mature outcomes.
    min_positives: int = Field(default=30, ge=1)
    # Estimate recall from the model's calibrated scores before outcomes arrive (CBPE), and
    # let a significant drop request retraining.
    estimate: bool = True


_RENAMED = {
    "stattest_threshold": "drift.alpha (a false-alarm rate) and drift.min_shift_sd",
    "drift_share_max": "drift.feature_share",
    "performance_recall_min": "performance.recall_min",
    "performance_min_labeled": "performance.min_positives",
}


class Monitoring(_Strict):
    drift: DriftMonitoring = DriftMonitoring()
    performance: PerformanceMonitoring = PerformanceMonitoring()
    retrain_cooldown_days: int = Field(default=7, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in _RENAMED.items():
                if old in data:
                    raise FieldError((old,), f"replaced by monitoring.{new}")
        return data


class Scale(_Strict):
    """How work is cut as data grows: a backfill of more days than this runs as several
    runs of this many days (each one Spark job per asset over its window); null runs any
    range as one run."""

    backfill_days_per_run: int | None = Field(default=None, ge=1)


class Serving(_Strict):
    """How the champion scores: ``online`` (an endpoint clients call), ``batch`` (each day's
    events scored in bulk into a Delta table) or ``both``; monitoring reads what it serves.
    ``replay`` sends each landed day's events to the endpoint as if clients had (a demo or
    a backtest; off for real traffic)."""

    port: int = Field(default=9100, ge=1024, le=65000)
    replicas: int = Field(default=1, ge=1)
    mode: Literal["online", "batch", "both"] = "online"
    replay: bool = False
    # Days with more events than this are scored in Spark (a pandas UDF over the booster);
    # smaller ones in-process.
    batch_spark_min_rows: int = Field(default=200_000, ge=1)

    @property
    def online(self) -> bool:
        return self.mode in ("online", "both")

    @property
    def batch(self) -> bool:
        return self.mode in ("batch", "both")


class Rollout(_Strict):
    """How a challenger reaches production: validated, then a canary (a traffic split), a
    shadow (mirrored traffic, answers discarded) or an A/B test (an even split)."""

    strategy: Literal["canary", "shadow", "ab"] = "canary"
    canary_traffic: int = Field(default=10, ge=1, le=50)
    latency_requests: int = Field(default=50, ge=5)
    latency_p99_ms_max: float = Field(default=250.0, gt=0)
    replay_requests: int = Field(default=400, ge=20)
    min_agreement: float = Field(default=0.9, ge=0, le=1)
    max_mean_score_shift: float = Field(default=0.1, ge=0, le=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)


class UseCase(_Strict):
    name: str
    title: str
    description: str
    owner: str
    sensitive: bool = False
    start_date: dt.date
    entity: Entity
    sources: dict[str, Source]
    label: Label
    features: Features
    protected_attributes: tuple[str, ...] = ()
    model: ModelConfig = ModelConfig()
    gates: Gates = Gates()
    monitoring: Monitoring = Monitoring()
    serving: Serving = Serving()
    rollout: Rollout = Rollout()
    scale: Scale = Scale()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("must be lower_snake_case, start with a letter, at most 40 chars")
        return value

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not (value.startswith("team:") or re.match(r"^[^@\s]+@[^@\s]+$", value)):
            raise ValueError("must be an email address or 'team:<name>' (Dagster's owner format)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> UseCase:
        roles = [s.role for s in self.sources.values()]
        if roles.count("events") != 1 or roles.count("labels") != 1:
            raise FieldError(("sources",),
                             "sources must hold exactly one 'events' and one 'labels' source")
        events, labels = self.events, self.labels
        if self.entity.join_key not in events.columns:
            raise FieldError(("entity", "join_key"),
                             f"entity join_key {self.entity.join_key!r} is not a column of "
                             f"the events source {self.events_name!r}")
        if events.key not in labels.columns:
            raise FieldError(("sources", self.labels_name, "columns"),
                             f"the labels source must carry the events key {events.key!r}")
        if self.label.column not in labels.columns:
            raise FieldError(("label", "column"),
                             f"label column {self.label.column!r} is not a column of the "
                             f"labels source {self.labels_name!r}")
        derived = self.features.entity.derived
        for i, col in enumerate(self.features.entity.columns):
            at = ("features", "entity", "columns", i)
            if col not in events.columns and col not in derived:
                raise FieldError(at, f"entity feature {col!r} is neither a column of "
                                     f"{self.events_name!r} nor a derived feature")
            if col in events.columns:
                _check_feature_type(at, col, events.columns[col])
        for i, col in enumerate(self.features.request):
            at = ("features", "request", i)
            if col not in events.columns:
                raise FieldError(at, f"request feature {col!r} is not a column of "
                                     f"{self.events_name!r}")
            _check_feature_type(at, col, events.columns[col])
        overlap = set(self.features.entity.columns) & set(self.features.request)
        if overlap:
            raise FieldError(("features", "request"),
                             f"features both entity and request: {sorted(overlap)}")
        for i, attr in enumerate(self.protected_attributes):
            at = ("protected_attributes", i)
            if attr not in events.columns:
                raise FieldError(at, f"protected attribute {attr!r} is not a column of "
                                     f"{self.events_name!r}")
            if attr in self.feature_names:
                raise FieldError(at, f"protected attribute {attr!r} must not be a model feature")
        return self

    # --- conveniences -------------------------------------------------------------------
    @property
    def events_name(self) -> str:
        return next(n for n, s in self.sources.items() if s.role == "events")

    @property
    def labels_name(self) -> str:
        return next(n for n, s in self.sources.items() if s.role == "labels")

    @property
    def events(self) -> Source:
        return self.sources[self.events_name]

    @property
    def labels(self) -> Source:
        return self.sources[self.labels_name]

    @property
    def entity_features(self) -> tuple[str, ...]:
        return self.features.entity.columns

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's inputs, in the order the model sees them."""
        return self.features.entity.columns + self.features.request

    def feature_type(self, feature: str) -> str:
        """A feature's type in tables and logs: text for a categorical text feature, else a
        double (numbers, and derived features)."""
        column = self.events.columns.get(feature)
        return "string" if column is not None and column.type == "string" else "double"

    @property
    def categorical_features(self) -> frozenset[str]:
        """Features the contract declares as categories: text, or a closed list of values."""
        columns = self.events.columns
        return frozenset(f for f in self.feature_names if f in columns
                         and (columns[f].type == "string" or columns[f].allowed))

    @property
    def feature_view_name(self) -> str:
        return f"{self.entity.name}_features"

    @property
    def gold_table(self) -> str:
        return f"gold_{self.entity.name}_features"

    @property
    def labeled_table(self) -> str:
        return f"labeled_{self.events_name}"


def _check_feature_type(at: KeyPath, name: str, column: Column) -> None:
    """A feature is a number, or a text column whose categories are declared."""
    if column.type in NUMERIC_TYPES:
        return
    if column.type == "string" and (column.allowed is not None
                                    or column.min_frequency is not None):
        return
    if column.type == "string":
        raise FieldError(at, f"feature {name!r} is text: declare its categories, a closed "
                             "list (allowed: [...]) or min_frequency: 0.01 to learn them from "
                             "the training data (and other: <category> for anything else)")
    raise FieldError(at, f"feature {name!r} has type {column.type}; features must be int, "
                         "double, boolean or categorical text")


@dataclass(frozen=True)
class Problem:
    """One mistake in a use-case file: its line (1-based), the key path that holds it (e.g.
    ``features.request[1]``; empty for a syntax error) and what is wrong."""

    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line or '?'}: {self.where + ': ' if self.where else ''}{self.message}"


class UseCaseError(ValueError):
    """A use-case file is invalid; ``str()`` lists every problem with its line number."""

    def __init__(self, path: Path, problems: list[Problem]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: invalid use case\n" + "\n".join(f"  {p}" for p in problems))

    def located(self, shown_as: str | None = None) -> list[str]:
        """Each problem as ``file:line: where: message``, the way compilers report errors."""
        name = shown_as or str(self.path)
        return [f"{name}:{p.line or '?'}: {p.where + ': ' if p.where else ''}{p.message}"
                for p in self.problems]


KeyPath = tuple[str | int, ...]


def _line_index(node: yaml.Node, prefix: KeyPath = ()) -> dict[KeyPath, int]:
    """Map each key path in a YAML document to its 1-based line number."""
    lines: dict[KeyPath, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines[path] = key.start_mark.line + 1
            lines.update({k: v for k, v in _line_index(value, path).items() if k != path})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_index(item, (*prefix, i)))
    return lines


def _where(path: KeyPath) -> str:
    """``("features", "request", 1)`` -> ``features.request[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


_MESSAGES = {"missing": "required key is missing",
             "extra_forbidden": "unknown key (not part of a use case; a typo?)"}


_SHOULD = "Input should be "


def _problems(exc: ValidationError, lines: dict[KeyPath, int]) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc: KeyPath = tuple(err["loc"])
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, FieldError):
            loc = (*loc, *error.path)
        cut = next(c for c in range(len(loc), -1, -1) if loc[:c] in lines)
        # A missing key is named even though it is not in the file; anything past the last
        # key the file holds is pydantic's own bookkeeping (a union's member types).
        shown = loc if err["type"] == "missing" else loc[:cut]
        message = _MESSAGES.get(err["type"], err["msg"].removeprefix("Value error, "))
        problem = Problem(lines.get(loc[:cut]), _where(shown) or "(top level)", message)
        same = next((p for p in problems if (p.line, p.where) == (problem.line, problem.where)),
                    None)
        if same is None:
            problems.append(problem)
        elif same.message.startswith(_SHOULD) and message.startswith(_SHOULD):
            # A union reports each member it tried: one problem, every accepted kind named.
            merged = f"{same.message}, or {message.removeprefix(_SHOULD)}"
            problems[problems.index(same)] = Problem(same.line, same.where, merged)
    return problems


def _parse(text: str, path: Path) -> tuple[UseCase, dict[KeyPath, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or exc
        opened = getattr(exc, "context_mark", None)
        if getattr(exc, "context", None) and opened is not None and opened.line != mark.line:
            problem = f"{problem}; {exc.context} that started on line {opened.line + 1}"
        raise UseCaseError(path, [Problem(mark.line + 1 if mark else None, "",
                                          f"not valid YAML ({problem})")]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise UseCaseError(path, [Problem(1, "", "a use case is a YAML mapping")])
    lines = _line_index(node)
    try:
        return UseCase.model_validate(data), lines
    except ValidationError as exc:
        raise UseCaseError(path, _problems(exc, lines)) from None


def parse_use_case(text: str, path: Path) -> UseCase:
    return _parse(text, path)[0]


def _load(path: Path) -> tuple[UseCase, dict[KeyPath, int]]:
    path = Path(path)
    use_case, lines = _parse(path.read_text(encoding="utf-8"), path)
    if use_case.name != path.stem:
        raise UseCaseError(path, [Problem(lines.get(("name",), 1), "name",
                                          f"{use_case.name!r} must match the file name "
                                          f"{path.stem!r}")])
    return use_case, lines


def load_use_case(path: Path) -> UseCase:
    return _load(path)[0]


def load_use_cases(dirs: tuple[Path, ...] | list[Path]) -> list[UseCase]:
    found: dict[str, UseCase] = {}
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.yaml")):
            use_case, lines = _load(path)
            if use_case.name in found:
                raise UseCaseError(path, [Problem(lines.get(("name",), 1), "name",
                                                  f"a use case named {use_case.name!r} is "
                                                  "already defined in another file")])
            found[use_case.name] = use_case
    return list(found.values())
