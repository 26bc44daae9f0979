"""The `lakeloop` command line (click): what people do by hand, without reading code."""

from lakeloop.cli.commands import cli, main

__all__ = ["cli", "main"]
