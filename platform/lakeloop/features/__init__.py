"""Features: the Feast objects generated from a use case, the store and its online side."""
