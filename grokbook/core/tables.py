"""Query tables and keyed random generators, the vocabulary every data builder shares.

A *query table* is a dict of equal-length int64 arrays ``h, r1, r2, b, t`` (atomic facts
have ``r2 = b = -1``). Every random choice draws from a generator keyed by
``(seed, purpose, ...)``, so one builder's draws never shift another's.
"""
from __future__ import annotations

import numpy as np

COLUMNS = ("h", "r1", "r2", "b", "t")

# generator purposes: the graph and its splits (core.data), augmentation (core.regimes),
# new knowledge (core.newknowledge)
GRAPH, SPLIT, TEST, TRAIN, PROBE, AUG = range(6)
NEW, REPLAY, TPROBE, CONTROL = 20, 21, 22, 23
SHUFFLE = 30


def rng(seed: int, purpose: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng([seed, purpose, *extra])


def table(**cols) -> dict:
    n = len(cols["h"])
    return {c: np.asarray(cols.get(c, np.full(n, -1)), dtype=np.int64) for c in COLUMNS}


def empty() -> dict:
    return {c: np.zeros(0, dtype=np.int64) for c in COLUMNS}


def take(tb: dict, idx) -> dict:
    return {c: v[idx] for c, v in tb.items()}


def concat(*tables: dict) -> dict:
    return {c: np.concatenate([t[c] for t in tables]) for c in COLUMNS}


def n_rows(tb: dict) -> int:
    return len(tb["h"])
