"""Verdicts over seeds: the shared precondition and the seed-level intervals.

Every verdict of the book reads several seeds of the subject (each seed a new graph and a
new initialisation). Three tools serve all of them:

- ``not_measured(n, ...)``: the precondition every rule shares -- the reason a verdict
  cannot be given (too few seeds measured, too many censored), or None;
- ``share_interval(k, n)``: a share of seeds with its 95 % Wilson interval;
- ``mean_interval(values)`` and ``slope_interval(x, y, groups)``: a mean over seeds and a
  log-log slope, each with a 95 % bootstrap interval that resamples seeds (the runs
  within each x value), so that the interval widens when seeds disagree.
"""
from __future__ import annotations

import math

import numpy as np

from .definitions import wilson

MIN_SEEDS = 3        # a verdict needs at least this many measured seeds
LEVEL = 0.95
BOOT = 2000


def not_measured(n: int, need: int = MIN_SEEDS, censored: int = 0,
                 what: str = "seeds") -> str | None:
    """The precondition of every rule: why the verdict is "not measured", or None. ``n``
    measured units (seeds, or runs), of which ``censored`` ended without the milestone
    the rule reads (still rising, or never memorized at their budget); more than half of
    them censored leaves nothing to decide on."""
    if n < need:
        return f"{n} {what} measured; the rule needs {need}"
    if censored * 2 > n:
        return f"{censored} of {n} {what} ended before the milestone (censored)"
    return None


def share_interval(k: int, n: int) -> tuple[float, float, float]:
    """(share, low, high): ``k`` of ``n`` with its 95 % Wilson interval."""
    if not n:
        return math.nan, math.nan, math.nan
    lo, hi = wilson(k / n, n)
    return k / n, lo, hi


def mean_interval(values, seed: int = 0, n: int = BOOT) -> tuple[float, float, float]:
    """(mean, low, high) of ``values`` (one per seed) with a 95 % bootstrap interval."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], float)
    if not len(v):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, len(v), (n, len(v)))].mean(1)
    a = (1 - LEVEL) / 2
    return float(v.mean()), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def median_interval(values, seed: int = 0, n: int = BOOT) -> tuple[float, float, float]:
    """(median, low, high) of ``values`` (one per seed) with a 95 % bootstrap interval of
    the median (with three seeds it spans about the middle two values)."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], float)
    if not len(v):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    boots = np.median(v[rng.integers(0, len(v), (n, len(v)))], axis=1)
    a = (1 - LEVEL) / 2
    return float(np.median(v)), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def slope(x, y) -> float:
    """Least-squares slope of log y on log x."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


def slope_interval(x, y, seed: int = 0, n: int = BOOT) -> tuple[float, float, float]:
    """(slope, low, high) of log ``y`` on log ``x`` (one pair per run); the bootstrap
    resamples the runs within each value of ``x``, so every value keeps its weight."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    values = np.unique(x)
    if len(values) < 2:
        return math.nan, math.nan, math.nan
    groups = [np.flatnonzero(x == v) for v in values]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        boots.append(slope(x[idx], y[idx]))
    a = (1 - LEVEL) / 2
    return slope(x, y), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))
