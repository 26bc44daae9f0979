"""Monitoring layer assets."""
