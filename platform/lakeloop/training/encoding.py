"""The model's input matrix from a use case's features: numbers as they are, categories one-hot.

XGBoost's native categorical splits cannot be exported to ONNX (its tree ensemble operator
has no set-membership split), and every model here is exported and served through the
ONNX parity gate; so each category becomes a 0/1 column (``<feature>=<category>``), which
XGBoost splits on as well as on any number, and which ONNX reproduces exactly. Missing
numbers stay NaN (XGBoost learns which way they go); a missing category is all zeros.

The same ``Encoding`` (saved as JSON beside the model) encodes training frames, the golden
ONNX rows, batch scores and each online request, so training and serving cannot disagree.
This module needs only numpy: it runs in the serving image, which has no pandas.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

# The model version tag that holds a model's encoding (JSON).
ENCODING_TAG = "encoding"
# Characters XGBoost refuses in feature names.
_UNSAFE = str.maketrans({"[": "(", "]": ")", "<": "lt", ",": ";"})


def category_text(value: Any) -> str | None:
    """One text per category, whichever way a source typed it: 36, 36.0 and "36" are one
    level (a training set keeps an int, a request or a log a double)."""
    if value is None:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | float | np.integer | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


class UnknownCategory(ValueError):
    """A value outside a categorical feature's categories, with no ``other`` to go to."""

    def __init__(self, feature: str, value: Any, levels: Sequence[str]):
        self.feature, self.value, self.levels = feature, value, tuple(levels)
        super().__init__(f"{feature}: {value!r} is not one of the categories "
                         f"({', '.join(levels)})")


@dataclass(frozen=True)
class Categorical:
    """A categorical feature's levels (its one-hot columns, in order) and where anything
    else goes (``other``, one of the levels), or None to refuse it."""

    name: str
    levels: tuple[str, ...]
    other: str | None = None

    def level_of(self, value: Any) -> str | None:
        """The level a value falls into; None for a missing value."""
        text = category_text(value)
        if text is None:
            return None
        if text in self._index:
            return text
        if self.other is not None:
            return self.other
        raise UnknownCategory(self.name, value, self.levels)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {level: i for i, level in enumerate(self.levels)}


@dataclass(frozen=True)
class Encoding:
    """From the use case's features (in order) to the model's input columns."""

    features: tuple[str, ...]
    categorical: dict[str, Categorical] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The model's input columns: each number, then one column per category."""
        out = []
        for f in self.features:
            if f in self.categorical:
                out += [f"{f}={level}".translate(_UNSAFE) for level in
                        self.categorical[f].levels]
            else:
                out.append(f)
        return out

    def columns_of(self, feature: str) -> list[str]:
        """The input columns that encode ``feature``."""
        return [c for c, f in zip(self.columns, self.feature_of_columns(), strict=True)
                if f == feature]

    def feature_of_columns(self) -> list[str]:
        """For each input column, the feature it encodes (to sum contributions back)."""
        out = []
        for f in self.features:
            out += [f] * (len(self.categorical[f].levels) if f in self.categorical else 1)
        return out

    # --- encoding ------------------------------------------------------------------------
    def encode_rows(self, rows: Iterable[Sequence[Any]]) -> np.ndarray:
        """Rows of values in ``features`` order (numbers, and category values for the
        categorical features) as the model's float32 matrix."""
        rows = list(rows)
        out = np.zeros((len(rows), len(self.columns)), dtype=np.float32)
        for i, row in enumerate(rows):
            j = 0
            for f, value in zip(self.features, row, strict=True):
                cat = self.categorical.get(f)
                if cat is None:
                    out[i, j] = np.nan if value is None else float(value)
                    j += 1
                    continue
                level = cat.level_of(value)
                if level is not None:
                    out[i, j + cat._index[level]] = 1.0
                j += len(cat.levels)
        return out

    def encode_frame(self, frame, order: Literal["C", "F"] = "C") -> np.ndarray:
        """A pandas frame holding the features as the model's float32 matrix (vectorised:
        a category's text and level are worked out once per distinct value). ``order="F"``
        lays it out column by column: the same values, filled twice as fast, for a matrix
        that is only handed to XGBoost whole (a training DMatrix)."""
        # One float32 matrix filled column by column: the same values as stacking float64
        # columns and casting the result, without the two full-size copies.
        out = np.empty((len(frame), len(self.columns)), dtype=np.float32, order=order)
        at = 0
        for f in self.features:
            cat = self.categorical.get(f)
            if cat is None:
                out[:, at] = np.asarray(frame[f], dtype=np.float64)
                at += 1
                continue
            codes = _category_codes(frame[f], cat)
            block = out[:, at:at + len(cat.levels)]
            block[:] = 0.0
            present = codes >= 0
            block[np.nonzero(present)[0], codes[present]] = 1.0
            at += len(cat.levels)
        return out

    # --- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"features": list(self.features),
                "categorical": {n: {"levels": list(c.levels), "other": c.other}
                                for n, c in self.categorical.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Encoding:
        return cls(tuple(data["features"]),
                   {n: Categorical(n, tuple(c["levels"]), c.get("other"))
                    for n, c in (data.get("categorical") or {}).items()})

    @classmethod
    def for_use_case(cls, use_case, frame) -> Encoding:
        """The use case's encoding: text features with a closed list keep its categories;
        those with ``min_frequency`` keep the categories of ``frame`` (the training rows)
        that reach it, and send the rest to ``other`` (default "other")."""
        categorical = {}
        for name in use_case.feature_names:
            column = use_case.events.columns.get(name)
            if column is None or column.type != "string":
                continue
            if column.allowed is not None:
                # A missing value (a NaN in the list) is no category: it encodes as all zeros.
                levels = [t for t in map(category_text, column.allowed) if t is not None]
                other = column.other
            else:
                texts = [category_text(v) for v in frame[name].tolist()]
                counts: dict[str, int] = {}
                for text in texts:
                    if text is not None:
                        counts[text] = counts.get(text, 0) + 1
                floor = column.min_frequency * max(len(texts), 1)
                levels = sorted(t for t, n in counts.items() if n >= floor)
                other = column.other or "other"
            if other is not None and other not in levels:
                levels.append(other)
            categorical[name] = Categorical(name, tuple(levels), other)
        return cls(tuple(use_case.feature_names), categorical)

    @classmethod
    def from_json(cls, text: str | None, features: Sequence[str]) -> Encoding:
        """The saved encoding, or all-numeric ``features`` for a model saved without one."""
        return cls.from_dict(json.loads(text)) if text else cls(tuple(features))


def _category_codes(series, cat: Categorical) -> np.ndarray:
    """Each value's level index in ``cat`` (-1 for a missing value), as ``level_of`` says.

    Distinct values are found by pandas' hash table when that cannot merge two values
    ``category_text`` keeps apart: any column that is not of Python objects, and a column of
    objects that are all text. In a column of mixed objects True equals 1 to a hash table
    while their texts differ ("true", "1"), so such a column is read value by value."""
    import pandas as pd

    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) != "string":
        values, row_codes = series.tolist(), None
    else:
        row_codes, uniques = pd.factorize(series, use_na_sentinel=True)
        values = list(uniques)
    index = cat._index
    codes = np.full(len(values), -1, dtype=np.int64)
    for n, value in enumerate(values):
        text = category_text(value)
        if text is None:
            continue
        code = index.get(text)
        if code is None:
            if cat.other is None:  # the first such value in the column's order
                raise UnknownCategory(cat.name, value, cat.levels)
            code = index[cat.other]
        codes[n] = code
    if row_codes is None:
        return codes
    if not len(codes):  # nothing but missing values
        return np.full(len(row_codes), -1, dtype=np.int64)
    return np.where(row_codes >= 0, codes[np.maximum(row_codes, 0)], -1)
