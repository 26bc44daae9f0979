"""Use cases are configuration: one YAML file declares a tabular binary-classification problem.

A use-case file names its entity, its sources (an ``events`` feed of the rows a model scores
and a ``labels`` feed of outcomes that arrive later), the data contract of every column, the
features, the protected attributes used only for fairness, and the thresholds of the gates and
monitors. Loading validates all of it and reports problems with the file's line numbers.

``schema`` holds the data side (columns, sources, features, model, gates), ``operations`` the
operating side (monitoring, scale, serving, rollout), ``model`` the UseCase that joins them
and ``loading`` the file reader.
"""

from lakeloop.usecase.loading import (
    Problem,
    UseCaseError,
    load_use_case,
    load_use_cases,
    parse_use_case,
)
from lakeloop.usecase.model import UseCase
from lakeloop.usecase.operations import (
    Alerts,
    DriftMonitoring,
    FairnessMonitoring,
    Monitoring,
    PerformanceMonitoring,
    Rollout,
    Scale,
    Serving,
)
from lakeloop.usecase.schema import (
    Column,
    Entity,
    EntityFeatures,
    Features,
    FieldError,
    Gates,
    Label,
    ModelConfig,
    Source,
    SourceChecks,
)

__all__ = [
    "Alerts", "Column", "DriftMonitoring", "Entity", "EntityFeatures", "FairnessMonitoring",
    "Features",
    "FieldError", "Gates", "Label", "ModelConfig", "Monitoring", "PerformanceMonitoring",
    "Problem", "Rollout",
    "Scale", "Serving", "Source", "SourceChecks", "UseCase", "UseCaseError", "load_use_case",
    "load_use_cases", "parse_use_case",
]
