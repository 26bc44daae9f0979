"""Training layer assets."""
