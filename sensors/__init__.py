"""Sensors for external events: drift, performance, new model versions."""
