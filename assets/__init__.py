"""Software-defined assets, one module per data concept, grouped by layer."""
