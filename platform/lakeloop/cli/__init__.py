"""The `lakeloop` command line (click): what people do by hand, without reading code."""

from lakeloop.cli import lineage  # noqa: F401  (registers `lakeloop trace` and `audit`)
from lakeloop.cli.commands import cli, main

__all__ = ["cli", "main"]
