"""The plaintext truth of the join computations' exact mode, for tests that compare with it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

WIDE = ("-1000000000", "1000000000")
"""Public bounds that clip nothing in these tests."""


def coded(values: npt.ArrayLike, k: int) -> npt.NDArray[np.float64]:
    """``values`` (one per identifier, each its own entity) top- and bottom-coded at the
    k-th largest and k-th smallest, as exact mode does before any statistic."""
    v = np.asarray(values, dtype=np.float64)
    ordered = np.sort(v)
    return np.clip(v, ordered[k - 1], ordered[-k])
