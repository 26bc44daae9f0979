"""Lakehouse layer assets."""
