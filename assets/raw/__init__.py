"""Raw layer assets."""
