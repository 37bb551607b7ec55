"""Data regimes of the study: compositions that use OOD atomic facts, added to training.

He et al. (2026) add *mixed* compositions, built on the OOD atomic facts that sit behind
the OOD test queries, to the training set of Wang et al. (2024):

- **Hop-1 injection**: an OOD fact (h, r1, b) joined with ID facts (b, r2, t) leaving b.
- **Hop-2 injection**: an OOD fact (b, r2, t) joined with ID facts (h, r1, b) entering b.

The rule, as the study's code applies it (``../shared/REFERENCE.md``):

- **Pool**: only the OOD facts that occur in an OOD two-hop test query -- as its first hop
  (hop-1 injection) or its second hop (hop-2 injection) -- not every OOD fact.
- **Which facts**: ratio 1.0 takes the whole pool; a smaller ratio takes
  ``round(ratio x |pool|)`` of them at random (Python's round: 636.5 -> 636).
- **Partners**: for each picked fact, ``min(k, available)`` partners drawn *without
  replacement* from its ID partners only. Every added row is a mixed composition: never an
  OOD test query (both hops OOD), never in the ID pool or the held-out ID set (both hops ID).

The draws are seeded by the run seed (the study used seed 42, with Python's ``random``: its
exact draws are not reproduced, its counts are), and the counts are reported in
``Dataset.counts`` as ``hop1_added`` / ``hop2_added``. At paper scale on our seed-0 graph
this gives 22,833 + 20,943 (both full) and 5,760 + 5,634 (both half), within 1-3 % of the
study's (``grokbook.chapters.study.REGIME_ADDED``). An earlier rule of this book (all OOD
facts, partners drawn with replacement among all facts) put about a third of the injected
facts where no OOD test query uses them; ``RULE`` names the rule in the run id of every
non-natural run, so runs built by the earlier rule are not reused.
"""
from __future__ import annotations

import numpy as np

from .tables import AUG, concat, empty, rng, table

# name -> (hop-1 ratio, hop-1 k, hop-2 ratio, hop-2 k), as in the study's table
REGIMES = {
    "natural": (0.0, 0, 0.0, 0),
    "both_full": (1.0, 18, 1.0, 18),
    "both_half": (0.5, 9, 0.5, 9),
    "hop1_only": (1.0, 18, 0.0, 0),
    "hop2_only": (0.0, 0, 1.0, 18),
}


RULE = "study-pool"   # enters the run id of non-natural regimes (core.config.Config.hash)


def _partners(gen, chosen, partners_of, ood, k) -> tuple[np.ndarray, np.ndarray]:
    """(picked fact, partner) index pairs: min(k, available) ID partners of each picked
    fact, drawn without replacement."""
    first, second = [], []
    for i in chosen:
        cand = partners_of(i)
        cand = cand[~ood[cand]]
        if len(cand) == 0:
            continue
        drawn = np.sort(gen.choice(cand, min(k, len(cand)), replace=False))
        first.append(np.full(len(drawn), i))
        second.append(drawn)
    if not first:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(first).astype(np.int64), np.concatenate(second).astype(np.int64)


def _pick(gen, pool: np.ndarray, ratio: float) -> np.ndarray:
    """The whole pool at ratio 1, else round(ratio x |pool|) of it at random."""
    if ratio >= 1.0:
        return pool
    return np.sort(gen.choice(pool, int(round(ratio * len(pool))), replace=False))


def injection_pools(atomic: dict, ood: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the OOD facts that are the first hop / the second hop of some OOD two-hop
    query (both hops OOD). Rows of ``atomic`` are ordered by head with ``d`` facts each."""
    i1 = np.repeat(np.arange(len(ood)), d)
    i2 = atomic["t"][i1] * d + np.tile(np.arange(d), len(ood))
    both = ood[i1] & ood[i2]
    return np.unique(i1[both]), np.unique(i2[both])


def injections(atomic: dict, ood: np.ndarray, d: int, seed: int, hop1=(0.0, 0),
               hop2=(0.0, 0)) -> tuple[dict, dict]:
    """The mixed compositions of one regime, seeded, with their counts and pool sizes.

    ``hop1 = (ratio, k)``: that fraction of the hop-1 pool, each fact joined with up to k
    ID facts leaving its tail. ``hop2`` likewise, with ID facts entering its head.
    Rows of ``atomic`` are ordered by head with ``d`` facts each (as make_graph gives).
    """
    pool1, pool2 = injection_pools(atomic, ood, d)
    parts = []
    counts = {"hop1_added": 0, "hop2_added": 0, "hop1_pool": int(len(pool1)),
              "hop2_pool": int(len(pool2))}
    (ratio1, k1), (ratio2, k2) = hop1, hop2

    def joined(first, second):
        return table(h=atomic["h"][first], r1=atomic["r1"][first], r2=atomic["r1"][second],
                     b=atomic["t"][first], t=atomic["t"][second])

    if ratio1 > 0 and k1 > 0:
        gen = rng(seed, AUG, 1)
        # partners of (h, r1, b): the facts leaving b, rows b*d .. b*d+d-1
        first, second = _partners(gen, _pick(gen, pool1, ratio1), lambda i: np.arange(
            atomic["t"][i] * d, atomic["t"][i] * d + d), ood, k1)
        parts.append(joined(first, second))
        counts["hop1_added"] = int(len(first))
    if ratio2 > 0 and k2 > 0:
        gen = rng(seed, AUG, 2)
        order = np.argsort(atomic["t"], kind="stable")      # facts grouped by their tail
        starts = np.searchsorted(atomic["t"][order], np.arange(int(atomic["h"].max()) + 2))
        incoming = lambda i: order[starts[atomic["h"][i]]:starts[atomic["h"][i] + 1]]  # noqa: E731
        picked, partner = _partners(gen, _pick(gen, pool2, ratio2), incoming, ood, k2)
        parts.append(joined(partner, picked))
        counts["hop2_added"] = int(len(picked))
    parts = [p for p in parts if len(p["h"])]
    return (concat(*parts) if parts else empty()), counts


def augment(cfg, seed: int, atomic: dict, ood: np.ndarray, d: int) -> tuple[dict, dict]:
    """The extra training compositions of ``cfg.regime`` and their counts."""
    r1, k1, r2, k2 = REGIMES[cfg.regime]
    if cfg.regime == "natural":
        return empty(), {"hop1_added": 0, "hop2_added": 0}
    return injections(atomic, ood, d, seed, (r1, k1), (r2, k2))
