"""The command line's errors and exit statuses: 0 done, 1 failed (the message says what to do
next), 2 the command line itself was wrong."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A problem the user can fix; printed as one message, never as a traceback."""

    code = EXIT_FAILED


class UsageError(CliError):
    code = EXIT_USAGE
