"""Lakeloop: the ML lifecycle as one Dagster lineage graph.

This package is imported by the serving environment too (seldon-core components live in
``lakeloop.deployment.seldon``), so importing it must stay free of heavy dependencies.
"""

__version__ = "0.1.0"
