"""The 4xx answer of a component: seldon-core's exception in the serving environment, which
seldon-core turns into the HTTP status and message; a plain exception with the same fields
elsewhere (the platform and its tests check requests without seldon-core installed)."""

from __future__ import annotations

try:
    from seldon_core.flask_utils import SeldonMicroserviceException as _Base
except ImportError:  # not the serving environment

    class _Base(Exception):  # type: ignore[no-redef]
        status_code = 400

        def __init__(self, message, status_code=None, payload=None,
                     reason="MICROSERVICE_BAD_DATA"):
            super().__init__(message)
            self.message = message
            if status_code is not None:
                self.status_code = status_code
            self.payload = payload
            self.reason = reason


class RequestError(_Base):
    """A 4xx answer whose message names the problem."""

    def __init__(self, message: str, reason: str = "BAD_REQUEST", status_code: int = 400):
        super().__init__(message, status_code=status_code, reason=reason)
