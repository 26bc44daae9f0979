"""seldon-core inference components. They run in the serving environment (its own image),
so they import only the standard library, numpy, xgboost and seldon_core."""
