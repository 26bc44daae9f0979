"""Deployment layer assets."""
