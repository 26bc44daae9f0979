"""Where alerts land in tests: a real SMTP server (aiosmtpd) and a webhook receiver, both on
127.0.0.1, each keeping what it received."""

from __future__ import annotations

import email
import json
import threading
from dataclasses import dataclass
from email.message import Message
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import Alerts, load_use_case
from tests.support import ports


class SmtpReceiver:
    """An SMTP server; ``messages`` are the parsed emails, ``url`` apprise's address of it."""

    def __init__(self, to: str = "model-risk@example.org"):
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.to = to
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                outer.messages.append(email.message_from_bytes(envelope.content,
                                                               policy=default_policy))
                return "250 OK"

        self.port = ports.reserve()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?from=lakeloop@example.org&to={self.to}"
                "&mode=insecure")

    def texts(self) -> list[str]:
        """Each email's subject and plain-text body."""
        out = []
        for m in self.messages:
            part = m.get_body(preferencelist=("plain",)) if m.is_multipart() else m
            out.append(f"{m['Subject']}\n{part.get_content() if part is not None else ''}")
        return out

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()


class WebhookReceiver:
    """An HTTP endpoint that keeps every JSON body POSTed to it (apprise's ``json://``)."""

    def __init__(self):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", ports.reserve()), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self._server.server_port}/lakeloop"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- a use case that alerts both -------------------------------------------------------


MAIL_ENV, HOOK_ENV = "LAKELOOP_TEST_ALERTS_MAIL", "LAKELOOP_TEST_ALERTS_HOOK"


@dataclass
class Alerting:
    use_case: object
    lakehouse: LakehouseResource
    smtp: SmtpReceiver
    webhook: WebhookReceiver
    environ: dict[str, str]


def routed(**routes) -> Alerts:
    return Alerts.model_validate({
        "destinations": {"risk_team": {"env": MAIL_ENV}, "ml_oncall": {"env": HOOK_ENV}},
        "routes": [{"events": events, "to": to} for events, to in routes.values()]})


def alerting_in(data_root):
    """Receivers running, and the built-in use case routing every event to both."""
    base = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")
    use_case = base.model_copy(update={"alerts": routed(all=(["*"], ["risk_team",
                                                                     "ml_oncall"]))})
    with SmtpReceiver() as smtp, WebhookReceiver() as webhook:
        yield Alerting(use_case, LakehouseResource(data_root=str(data_root)), smtp, webhook,
                       {MAIL_ENV: smtp.url, HOOK_ENV: webhook.url})
