"""Which held-out two-hop facts a model answers, by how often the fact its second hop needs
was seen *as a second hop* in training (its exposure).

Wang et al. explain the OOD failure by where the second hop is stored: in the upper layers,
learned only from two-hop training facts. That account predicts that held-out ID queries
are answered more often the more two-hop training facts share their second hop (b, r2),
and OOD queries (exposure 0 in the natural regime) almost never. A rise alone does not
separate fact-by-fact learning from better-learned frequent bridges (the exposure of (b, r2)
grows with how many training facts pass through b); the exposure-0 queries are what speak
to reusing the atomic fact itself.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .definitions import GROKKED_SPLIT, OOD_SPLIT, wilson

EXPOSURE_BINS = ((0, 0), (1, 1), (2, 2), (3, 4), (5, None))
RISES_FROM, RISES_TO = "1", ">= 5"   # the exposure buckets ``exposure_rises`` compares


def _bin_label(lo, hi) -> str:
    return f">= {lo}" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")


def hop2_exposure(ds, queries: dict) -> np.ndarray:
    """For each two-hop query, how many two-hop training facts have its second hop (b, r2)
    as theirs. In the natural regime its mean over the ID atomic facts is phi (each of the
    phi x ID-atomic training two-hop facts has one second hop) and an OOD query's is 0 by
    construction; chapter 5's regimes add OOD facts as second hops."""
    tr = ds.train
    two = tr["r2"] >= 0
    seen = pd.Series(1, index=pd.MultiIndex.from_arrays([tr["b"][two], tr["r2"][two]]))
    seen = seen.groupby(level=[0, 1]).sum()
    wanted = pd.MultiIndex.from_arrays([queries["b"], queries["r2"]])
    return seen.reindex(wanted, fill_value=0).to_numpy()


@torch.no_grad()
def answers_correct(model, ds, queries: dict, chunk: int = 4096) -> np.ndarray:
    """Whether ``model`` answers each query of ``queries`` with its tail t (evaluated in
    eval mode; the model's mode is restored)."""
    was = model.training
    model.eval()
    x, pos, y = ds.tensors(queries)
    out = [model(x[i:i + chunk], pos[i:i + chunk]).argmax(-1) == y[i:i + chunk]
           for i in range(0, len(y), chunk)]
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros(0, bool)


def accuracy_by_exposure(model, ds, splits=(GROKKED_SPLIT, OOD_SPLIT)) -> pd.DataFrame:
    """Accuracy on two-hop probe sets by ``hop2_exposure`` bucket: split, exposure,
    queries, accuracy and its 95 % Wilson interval (lo, hi). Empty buckets are left out."""
    rows = []
    for split in splits:
        q = ds.probes.get(split)
        if q is None or not len(q["h"]):
            continue
        n = hop2_exposure(ds, q)
        ok = answers_correct(model, ds, q)
        for lo, hi in EXPOSURE_BINS:
            sel = (n >= lo) & (n <= (n.max() if hi is None else hi))
            k = int(sel.sum())
            if k:
                acc = float(ok[sel].mean())
                rows.append({"split": split, "exposure": _bin_label(lo, hi), "queries": k,
                             "accuracy": acc, **dict(zip(("lo", "hi"), wilson(acc, k)))})
    return pd.DataFrame(rows)


def exposure_rises(table: pd.DataFrame) -> bool | None:
    """For one run's ``accuracy_by_exposure`` table: whether held-out ID accuracy at
    exposure ``RISES_TO`` is above that at ``RISES_FROM`` beyond both 95 % intervals (None
    when either bucket has no queries: not measured)."""
    t = table[table["split"] == GROKKED_SPLIT].set_index("exposure")
    if RISES_FROM not in t.index or RISES_TO not in t.index:
        return None
    return bool(t.loc[RISES_TO, "lo"] > t.loc[RISES_FROM, "hi"])
