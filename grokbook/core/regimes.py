"""Data regimes of the study: compositions that use OOD atomic facts, added to training.

He et al. (2026) add *mixed* compositions, built on the OOD atomic facts that sit behind
the OOD test queries, to the training set of Wang et al. (2024):

- **Hop-1 injection**: an OOD fact (h, r1, b) joined with ID facts (b, r2, t) leaving b.
- **Hop-2 injection**: an OOD fact (b, r2, t) joined with ID facts (h, r1, b) entering b.

For a regime ``(ratio, k)`` per hop: ``round(ratio x |OOD atomic|)`` OOD facts are chosen
(without replacement); for each, ``k`` partner facts are drawn *with replacement* among all
the facts that meet its bridge; partners that are themselves OOD are dropped (that
composition would be an OOD test query), and repeated draws are dropped (duplicates
removed). Every added row is therefore a mixed composition: never an OOD test query (both
hops OOD), never in the ID pool or the held-out ID set (both hops ID). The draws are
seeded by the run seed (the study used seed 42), and the counts are reported in
``Dataset.counts`` as ``hop1_added`` / ``hop2_added``.

**Counts at paper scale.** Drawing with replacement and dropping OOD partners and
duplicates leaves about 11 distinct partners per OOD fact for k = 18, not 18, which is
why the study's "both full" adds far fewer than 2,000 x 18 = 36,000 per hop (its counts:
``grokbook.chapters.study.REGIME_ADDED``; ours: ``python -m grokbook data --preset paper
--set data.regime=both_full --json``). Ours come within a few percent for "both full"
but not for "both half": the study's code draws differently from what its paper states.
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


def _pairs(rng, chosen, partners_of, ood, k):
    """(first-hop index, second-hop index) pairs: k draws with replacement per chosen OOD
    fact among ``partners_of(i)``, OOD partners and duplicates dropped. Sorted."""
    rows = []
    for i in chosen:
        cand = partners_of(i)
        if len(cand) == 0:
            continue
        drawn = np.unique(rng.choice(cand, k, replace=True))
        rows.append(drawn[~ood[drawn]])
    return rows


def injections(atomic: dict, ood: np.ndarray, d: int, seed: int, hop1=(0.0, 0),
               hop2=(0.0, 0)) -> tuple[dict, dict]:
    """The mixed compositions of one regime, seeded, with their counts.

    ``hop1 = (ratio, k)``: that fraction of OOD facts, each joined with the distinct ID
    facts among k draws leaving its tail. ``hop2`` likewise, entering its head.
    Rows of ``atomic`` are ordered by head with ``d`` facts each (as make_graph gives).
    """
    ood_idx = np.flatnonzero(ood)
    parts, counts = [], {"hop1_added": 0, "hop2_added": 0}
    (ratio1, k1), (ratio2, k2) = hop1, hop2

    def joined(first, second):
        return table(h=atomic["h"][first], r1=atomic["r1"][first], r2=atomic["r1"][second],
                      b=atomic["t"][first], t=atomic["t"][second])

    if ratio1 > 0 and k1 > 0:
        gen = rng(seed, AUG, 1)
        chosen = np.sort(gen.choice(ood_idx, int(round(ratio1 * len(ood_idx))), replace=False))
        # partners of (h, r1, b): the facts leaving b, rows b*d .. b*d+d-1
        rows = _pairs(gen, chosen, lambda i: np.arange(atomic["t"][i] * d,
                                                      atomic["t"][i] * d + d), ood, k1)
        first = np.concatenate([np.full(len(r), i) for i, r in zip(chosen, rows)] or [[]])
        second = np.concatenate(rows or [[]])
        if len(first):
            parts.append(joined(first.astype(np.int64), second.astype(np.int64)))
        counts["hop1_added"] = int(len(first))
    if ratio2 > 0 and k2 > 0:
        gen = rng(seed, AUG, 2)
        chosen = np.sort(gen.choice(ood_idx, int(round(ratio2 * len(ood_idx))), replace=False))
        order = np.argsort(atomic["t"], kind="stable")      # facts grouped by their tail
        starts = np.searchsorted(atomic["t"][order], np.arange(int(atomic["h"].max()) + 2))
        incoming = lambda i: order[starts[atomic["h"][i]]:starts[atomic["h"][i] + 1]]  # noqa: E731
        rows = _pairs(gen, chosen, incoming, ood, k2)
        kept = [i for i in chosen if len(incoming(i))]
        first = np.concatenate(rows or [[]])
        second = np.concatenate([np.full(len(r), i) for i, r in zip(kept, rows)] or [[]])
        if len(first):
            parts.append(joined(first.astype(np.int64), second.astype(np.int64)))
        counts["hop2_added"] = int(len(first))
    return (concat(*parts) if parts else empty()), counts


def augment(cfg, seed: int, atomic: dict, ood: np.ndarray, d: int) -> tuple[dict, dict]:
    """The extra training compositions of ``cfg.regime`` and their counts."""
    r1, k1, r2, k2 = REGIMES[cfg.regime]
    return injections(atomic, ood, d, seed, (r1, k1), (r2, k2))
