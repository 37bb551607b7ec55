"""Data regimes of the study: compositions that use OOD atomic facts, added to training.

Hop-1 injection: an OOD fact (h, r1, b) joined with k ID facts (b, r2, t).
Hop-2 injection: an OOD fact (b, r2, t) joined with k ID facts (h, r1, b).
Both kinds are *mixed* compositions (one OOD hop, one ID hop), so they are never an
OOD test query (both hops OOD) and never in the ID pool (both hops ID).
"""
from __future__ import annotations

import numpy as np

# name -> (hop-1 ratio, hop-1 k, hop-2 ratio, hop-2 k), as in the study's table
REGIMES = {
    "natural": (0.0, 0, 0.0, 0),
    "both_full": (1.0, 18, 1.0, 18),
    "both_half": (0.5, 9, 0.5, 9),
    "hop1_only": (1.0, 18, 0.0, 0),
    "hop2_only": (0.0, 0, 1.0, 18),
}


def _empty():
    return {c: np.zeros(0, dtype=np.int64) for c in ("h", "r1", "r2", "b", "t")}


def injections(atomic: dict, ood: np.ndarray, d: int, seed: int, hop1=(0.0, 0),
               hop2=(0.0, 0)) -> tuple[dict, dict]:
    """The mixed compositions of one regime, seeded, with their counts.

    ``hop1 = (ratio, k)``: that fraction of OOD facts, each joined with up to k ID facts
    leaving its tail. ``hop2`` likewise, joined with up to k ID facts entering its head.
    """
    from .data import _rng, _AUG, _concat, _table
    rng = _rng(seed, _AUG)
    ood_idx = np.flatnonzero(ood)
    parts, counts = [], {"hop1_added": 0, "hop2_added": 0}
    (r1, k1), (r2, k2) = hop1, hop2
    if r1 > 0 and k1 > 0:
        chosen = np.sort(rng.choice(ood_idx, int(round(r1 * len(ood_idx))), replace=False))
        rows = []
        for i in chosen:
            b = atomic["t"][i]
            out = np.arange(b * d, b * d + d)            # facts leaving the bridge
            out = out[~ood[out]]
            rows += [(i, j) for j in np.sort(rng.choice(out, min(k1, len(out)), replace=False))]
        if rows:
            a = np.array(rows)
            parts.append(_table(h=atomic["h"][a[:, 0]], r1=atomic["r1"][a[:, 0]],
                                r2=atomic["r1"][a[:, 1]], b=atomic["t"][a[:, 0]],
                                t=atomic["t"][a[:, 1]]))
            counts["hop1_added"] = len(rows)
    if r2 > 0 and k2 > 0:
        chosen = np.sort(rng.choice(ood_idx, int(round(r2 * len(ood_idx))), replace=False))
        incoming = {}
        for j in np.flatnonzero(~ood):
            incoming.setdefault(int(atomic["t"][j]), []).append(j)
        rows = []
        for i in chosen:
            b = int(atomic["h"][i])
            inc = np.array(incoming.get(b, []), dtype=np.int64)
            if len(inc):
                rows += [(j, i) for j in np.sort(rng.choice(inc, min(k2, len(inc)), replace=False))]
        if rows:
            a = np.array(rows)
            parts.append(_table(h=atomic["h"][a[:, 0]], r1=atomic["r1"][a[:, 0]],
                                r2=atomic["r1"][a[:, 1]], b=atomic["t"][a[:, 0]],
                                t=atomic["t"][a[:, 1]]))
            counts["hop2_added"] = len(rows)
    return (_concat(*parts) if parts else _empty()), counts


def augment(cfg, seed: int, atomic: dict, ood: np.ndarray, d: int) -> tuple[dict, dict]:
    """The extra training compositions of ``cfg.regime``."""
    r1, k1, r2, k2 = REGIMES[cfg.regime]
    return injections(atomic, ood, d, seed, (r1, k1), (r2, k2))
