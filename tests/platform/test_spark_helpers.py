"""Spark helpers that need no Spark: folding a plan's expressions as a balanced tree."""

import math
import operator

import pytest

from lakeloop.spark import fold


def _depth(tree) -> int:
    return 1 + max(map(_depth, tree)) if isinstance(tree, tuple) else 0


@pytest.mark.parametrize("n", [1, 2, 3, 50, 257])
def test_fold_combines_everything_once_at_logarithmic_depth(n):
    items = list(range(n))
    assert fold(items, operator.add) == sum(items)
    tree = fold(items, lambda a, b: (a, b))
    assert _depth(tree) == math.ceil(math.log2(n))  # a chain would be n - 1 deep


def test_fold_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="nothing to fold"):
        fold([], operator.or_)
