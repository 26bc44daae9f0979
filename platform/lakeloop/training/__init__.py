"""Training: time splits, XGBoost, encodings, gates, fairness, explanations, model cards.
Light to import (the serving image imports lakeloop.training.encoding)."""
