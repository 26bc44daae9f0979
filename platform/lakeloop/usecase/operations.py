"""The operating side of a use-case file: monitoring (drift, performance), the scale it runs
at, serving and rollouts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from lakeloop.governance.events import ALL, KINDS
from lakeloop.usecase.schema import FieldError, _Strict


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


class FairnessMonitoring(_Strict):
    """Fairness in production: the gates' tolerances (gates.fairness_ratio_min and
    gates.tpr_gap_max), a breach declared only when a day's groups show it at level alpha."""

    alpha: float = Field(default=0.01, gt=0, lt=0.5)
    # A breach requests retraining, through the same rules as drift and performance (one run
    # per breached day, the cooldown, the reason in the run's tags).
    retrain: bool = False


_RENAMED = {
    "stattest_threshold": "drift.alpha (a false-alarm rate) and drift.min_shift_sd",
    "drift_share_max": "drift.feature_share",
    "performance_recall_min": "performance.recall_min",
    "performance_min_labeled": "performance.min_positives",
}


class Monitoring(_Strict):
    drift: DriftMonitoring = DriftMonitoring()
    performance: PerformanceMonitoring = PerformanceMonitoring()
    fairness: FairnessMonitoring = FairnessMonitoring()
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
    # Events per replayed request: 1 is one request per event (a front end); more sends
    # them as a batch-calling client does (one request of many instances, each logged as
    # its own row), which replays a long backfill in a fraction of the time.
    replay_batch_rows: int = Field(default=1, ge=1, le=1000)
    # Days with more events than this are scored in Spark (a pandas UDF over the booster);
    # smaller ones in-process.
    batch_spark_min_rows: int = Field(default=200_000, ge=1)
    # What scores online requests: XGBoost on the booster (UBJ), or ONNX Runtime on the
    # version's ONNX export, which exists only once the parity gate proved it equal.
    runtime: Literal["xgboost", "onnx"] = "xgboost"
    # On the cluster: every version in the one shared serving image, its model fetched from
    # the registry at start (shared), or an image per version with the model baked in and
    # labelled with its run and data (per_version; the serving_image asset builds it).
    image: Literal["shared", "per_version"] = "shared"

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
    # Agreement, score shift and error rate are measured on a sample of requests: a
    # challenger fails one only when its sample shows the breach at this level (a one-sided
    # confidence bound past the limit), so the verdict means the same at 40 requests as at
    # 40,000. A limit of 0 errors stays absolute: one error is a breach.
    alpha: float = Field(default=0.05, gt=0, lt=0.5)


class Approvals(_Strict):
    """Who may approve a sensitive use case's challenger, and how many must. Names are what
    each person gives as ``--by`` (or the run's identity, ``LAKELOOP_USER``); an empty list
    lets anyone who names themselves decide. The person who trained a version is never
    enough on their own (four eyes)."""

    approvers: tuple[str, ...] = ()
    required: int = Field(default=1, ge=1, le=10)

    @model_validator(mode="after")
    def _enough_people(self) -> Approvals:
        names = [a.strip() for a in self.approvers]
        if any(not a for a in names) or len(set(names)) != len(names):
            raise FieldError(("approvers",), "approvers must be distinct, non-empty names")
        if names and self.required > len(names):
            raise FieldError(("required",), f"{self.required} approvals are required but "
                             f"only {len(names)} approvers are listed")
        return self


class Destination(_Strict):
    """Where alerts go: the environment variable that holds the destination's URL, in
    apprise's syntax (``mailtos://user:password@host?to=...``, ``slack://...``,
    ``msteams://...``, ``json://host/path`` for a webhook). URLs carry credentials, so the
    use-case file names the variable, never the URL."""

    env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")

    @model_validator(mode="before")
    @classmethod
    def _no_url_here(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            raise FieldError(("url",), "a destination's URL carries its credentials: put it in "
                             "an environment variable and name that here (env: "
                             "LAKELOOP_ALERTS_TEAM)")
        return data


class Route(_Strict):
    """Which events (their kinds, or ``"*"`` for all) go to which destinations."""

    events: tuple[str, ...] = Field(min_length=1)
    to: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _known(self) -> Route:
        for i, kind in enumerate(self.events):
            if kind != ALL and kind not in KINDS:
                raise FieldError(("events", i), f"{kind!r} is not an event kind (kinds: "
                                 f"{', '.join(KINDS)}, or \"*\" for all)")
        return self


class Alerts(_Strict):
    """Who is told what: named destinations and the routes that send events to them. Every
    event lands in the audit trail whether or not a route sends it."""

    destinations: dict[str, Destination] = {}
    routes: tuple[Route, ...] = ()

    @model_validator(mode="after")
    def _destinations_exist(self) -> Alerts:
        for i, route in enumerate(self.routes):
            for j, name in enumerate(route.to):
                if name not in self.destinations:
                    raise FieldError(("routes", i, "to", j), f"{name!r} is not a destination "
                                     "(declare it under alerts.destinations, with the "
                                     "environment variable that holds its URL)")
        return self

    def destinations_for(self, kind: str) -> list[str]:
        """The destinations ``kind`` goes to, each once, in the order the routes name them."""
        out: list[str] = []
        for route in self.routes:
            if kind in route.events or ALL in route.events:
                out += [name for name in route.to if name not in out]
        return out
