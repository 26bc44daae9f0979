"""Features layer assets."""
