"""The use case: one file's sections, and the checks that span them."""

from __future__ import annotations

import datetime as dt
import re

from pydantic import field_validator, model_validator

from lakeloop.usecase.operations import (
    Alerts,
    Approvals,
    Monitoring,
    Rollout,
    Scale,
    Serving,
)
from lakeloop.usecase.schema import (
    NAME,
    NUMERIC_TYPES,
    Column,
    Entity,
    Features,
    FieldError,
    Gates,
    KeyPath,
    Label,
    ModelConfig,
    Source,
    _Strict,
)


class ReasonText(_Strict):
    up: str = ""
    down: str = ""


class UseCase(_Strict):
    name: str
    title: str
    description: str
    owner: str
    sensitive: bool = False
    approvals: Approvals = Approvals()
    start_date: dt.date
    entity: Entity
    sources: dict[str, Source]
    label: Label
    features: Features
    protected_attributes: tuple[str, ...] = ()
    # A reason, in the use case's words, per feature and direction: "up" when the feature
    # raised the score towards the positive class (the adverse decision), "down" otherwise.
    reason_codes: dict[str, ReasonText] = {}
    model: ModelConfig = ModelConfig()
    gates: Gates = Gates()
    monitoring: Monitoring = Monitoring()
    serving: Serving = Serving()
    rollout: Rollout = Rollout()
    scale: Scale = Scale()
    # Alerts to people, per event kind (lakeloop.governance); the audit trail keeps all.
    alerts: Alerts = Alerts()

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
            at: KeyPath = ("features", "entity", "columns", i)
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
        for name in self.reason_codes:
            if name not in self.feature_names:
                raise FieldError(("reason_codes", name), f"{name!r} is not a model feature "
                                 f"(features: {', '.join(self.feature_names)})")
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
