"""A booster's predictions and exact SHAP contributions for the few rows of one request,
through XGBoost's C functions.

The values are XGBoost's own: ``predict`` calls what ``Booster.inplace_predict`` calls
(``XGBoosterPredictFromDense``, prediction type 0) and ``contributions`` what
``Booster.predict(DMatrix(x), pred_contribs=True)`` calls (``XGDMatrixCreateFromDense``,
then ``XGBoosterPredictFromDMatrix`` with type 2), directly. For one row the Python wrapper
around them cost more than the trees: 0.6 ms of 1.3 ms for the contributions here (it
JSON-encodes the array interface through several helpers, builds a class per call to wrap
the output, checks feature names), and about half of inplace_predict's 0.4 ms. Equality with
the wrapper, bit for bit, is tested (tests/platform/deployment/test_model_component.py).
"""

from __future__ import annotations

import ctypes
import json
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xgboost as xgb

VALUE, CONTRIBUTIONS = 0, 2  # XGBoost's C API prediction types


def _config(kind: int) -> bytes:
    return json.dumps({"type": kind, "training": False, "iteration_begin": 0,
                       "iteration_end": 0, "strict_shape": False, "missing": float("nan"),
                       "cache_id": 0}).encode()


class NativeBooster:
    """``predict(matrix)``: one probability (or value) per row; ``contributions(matrix)``:
    rows x (columns + 1), the last column the base value. ``matrix``: float32 in the
    booster's column order, NaN for a missing value."""

    def __init__(self, booster: xgb.Booster, nthread: int = 1):
        # The library instance the booster lives in (a second dlopen of another copy of
        # libxgboost could not take this booster's handle).
        from xgboost.core import _LIB

        self._lib = _LIB
        self._booster = booster  # holds the handle alive as long as this object
        self._value = _config(VALUE)
        self._contributions = _config(CONTRIBUTIONS)
        self._matrix_config = json.dumps({"missing": float("nan"),
                                          "nthread": int(nthread)}).encode()

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        x, interface = _interface(matrix)
        shape, dims, out = _outputs()
        self._check(self._lib.XGBoosterPredictFromDense(
            self._booster.handle, interface, self._value, ctypes.c_void_p(),
            ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(out)))
        return _copy(shape, dims, out).reshape(x.shape[0])

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        x, interface = _interface(matrix)
        handle = ctypes.c_void_p()
        self._check(self._lib.XGDMatrixCreateFromDense(interface, self._matrix_config,
                                                       ctypes.byref(handle)))
        try:
            shape, dims, out = _outputs()
            self._check(self._lib.XGBoosterPredictFromDMatrix(
                self._booster.handle, handle, self._contributions, ctypes.byref(shape),
                ctypes.byref(dims), ctypes.byref(out)))
            return _copy(shape, dims, out).reshape(x.shape[0], -1)
        finally:
            self._lib.XGDMatrixFree(handle)

    def _check(self, status: int) -> None:
        if status != 0:
            self._lib.XGBGetLastError.restype = ctypes.c_char_p
            raise RuntimeError(f"XGBoost: {self._lib.XGBGetLastError().decode()}")


def _interface(matrix: np.ndarray) -> tuple[np.ndarray, bytes]:
    x = np.ascontiguousarray(matrix, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {x.shape}")
    return x, json.dumps({"data": [x.__array_interface__["data"][0], True],
                          "shape": list(x.shape), "strides": None, "typestr": "<f4",
                          "version": 3}).encode()


def _outputs():
    return (ctypes.POINTER(ctypes.c_uint64)(), ctypes.c_uint64(),
            ctypes.POINTER(ctypes.c_float)())


def _copy(shape, dims, out) -> np.ndarray:
    # The buffer is the booster's (per thread), reused by its next prediction: copy it.
    size = tuple(int(shape[i]) for i in range(dims.value))
    return np.ctypeslib.as_array(out, shape=size).copy()
