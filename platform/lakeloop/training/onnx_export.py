"""The portable artifact: an XGBoost booster exported to ONNX and checked against itself."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET_OPSET = 15  # the highest onnxmltools 1.16 converts XGBoost to


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    rows: int
    onnx_bytes: bytes


def to_onnx(booster, n_features: int) -> bytes:
    """ONNX bytes for a binary:logistic booster (input 'input', float32 [N, n_features])."""
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    plain = booster.copy()
    plain.feature_names = None  # the converter wants f0..fn names
    plain.feature_types = None
    model = convert_xgboost(plain, initial_types=[("input", FloatTensorType([None, n_features]))],
                            target_opset=TARGET_OPSET)
    return model.SerializeToString()


def onnx_probabilities(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": x.astype(np.float32)})
    probabilities = outputs[1]
    return np.asarray(probabilities)[:, 1]


def parity(booster, x: np.ndarray) -> Parity:
    """Export, then compare ONNX Runtime's probabilities with native XGBoost's on ``x``."""
    onnx_bytes = to_onnx(booster, x.shape[1])
    native = booster.inplace_predict(x.astype(np.float32))
    portable = onnx_probabilities(onnx_bytes, x)
    return Parity(float(np.max(np.abs(native - portable))) if len(x) else 0.0, len(x),
                  onnx_bytes)
