"""Alerts to people: each routed event, once, to the destinations its use case names.

Delivery goes through apprise, so a destination is anything it speaks (``mailtos://`` email,
``slack://``, ``msteams://``, ``json://`` webhooks, ...). The use-case file names each
destination and the environment variable that holds its URL, never the URL itself: URLs
carry passwords and tokens, which live in the environment only (a Kubernetes Secret on the
cluster). A destination that cannot be reached fails that delivery, recorded beside the event
in the audit trail, and never the decision that raised it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from lakeloop.governance.events import Event


@dataclass(frozen=True)
class Delivery:
    destination: str
    delivered: bool
    error: str = ""
    configured: bool = True  # False: its variable is not set here (a laptop, a test)


def deliver(alerts, event: Event, environ: Mapping[str, str] | None = None) -> list[Delivery]:
    """Send ``event`` to every destination the use case's ``alerts`` routes it to."""
    env = environ if environ is not None else os.environ
    return [_send(name, alerts.destinations[name].env, env.get(alerts.destinations[name].env,
                                                               ""), event)
            for name in alerts.destinations_for(event.kind)]


def _send(name: str, variable: str, url: str, event: Event) -> Delivery:
    import apprise

    if not url.strip():
        return Delivery(name, False, f"{variable} is not set: the destination's URL comes "
                        "from the environment", configured=False)
    notifier = apprise.Apprise()
    if not notifier.add(url.strip()):
        # The URL is never echoed: it holds the destination's credentials.
        return Delivery(name, False, f"{variable} holds no URL apprise understands")
    with apprise.LogCapture(level=logging.WARNING) as captured:
        sent = notifier.notify(title=event.title(), body=event.body(),
                               body_format=apprise.NotifyFormat.TEXT)
    if sent:
        return Delivery(name, True)
    problem = " ".join(captured.getvalue().split())[-300:] or "the destination refused it"
    return Delivery(name, False, problem)
