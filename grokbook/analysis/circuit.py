"""Claim 1's measurement: interchange interventions scored over informative sites only,
with bootstrap intervals and a rule calibrated by controls.

Why not the tracing heatmap's correlation: most of its cells are fixed by construction.
Patching a position whose state the counterfactual does not change (a position before the
swapped token, or any other position at the embedding) has exactly no effect; patching
the state that alone decides the answer (the swapped token at the embedding, the answer
position at the last stage, every r2 cell of a causal model) *is* the counterfactual run.
Two unrelated models agree on those cells, so a correlation over all of them reads "same"
for almost anything. Here each cell is tested, per model, for being one of the two:

- **inert**: the patched logits equal the clean logits for every query;
- **whole**: the patched logits equal the counterfactual run's logits for every query.

A cell can also be whole (or inert) because of what a model learned: a site that carries
all of the swapped token's information is the circuit, not an artefact. So the cells fixed
by *construction* are read off a randomly initialised model of the same architecture (the
``reference``), whose weights carry no function; only the remaining **informative** cells
enter the distance.

The score of a cell is an **interchange rate**: the share of queries whose output, after
the patch, becomes the model's own answer to the counterfactual query (not merely loses
the clean answer). Counterfactual queries are drawn from a pool both compared models were
trained on (by default the training two-hop facts), so each model knows their answers.

``distance(a, b)`` is the mean absolute difference of two profiles' rates over the
informative cells they share, on the same queries (paired); ``bootstrap`` resamples the
queries. ``path_rule`` turns a distance into "same" / "different" / "undetermined" against
the seed-to-seed scale and the negative controls (see its docstring).

``bridge_interchange`` is the direct test of routing: the r1-position state of an atomic
donor query ``[h', r1', pad]`` with bridge b' is copied into ``[h, r1, r2]`` at one stage,
and an output equal to tail(b', r2) means the model reads the bridge from that site.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .definitions import R1_POSITION
from .lens import site_lens
from .patching import SWAPS, tail_table
from .sites import Sites, two_hop

SAME, DIFFERENT, UNDETERMINED = "same", "different", "undetermined"
PATH_OUTCOMES = (SAME, DIFFERENT, UNDETERMINED)
TOLERANCE = 1e-4              # logits this close are "equal" (float noise of a recomputation)
BOOTSTRAP = 1000              # resamples of the queries
LEVEL = 0.95                  # interval level, and the seed-to-seed percentile
CLEAR_MARGIN = 1.0            # a negative control is "clearly" farther when its interval's
                              # lower end exceeds this x the seed-to-seed percentile


def middle_stage(stage_names) -> str:
    """The stage chosen in advance for the bridge tests: the middle of the model's stages
    (embedding excluded), never picked by looking at the data."""
    inner = list(stage_names)[1:]
    return inner[(len(inner) - 1) // 2]


# ---------------------------------------------------------------- queries
def sample_queries(table: dict, n: int | None, seed: int) -> dict:
    """``n`` two-hop rows drawn at random (seeded) across all heads; all rows if ``n`` is
    None or larger than the table."""
    q = two_hop(table)
    m = len(q["h"])
    if n is None or n >= m:
        return q
    idx = np.sort(np.random.default_rng([seed, 14]).choice(m, n, replace=False))
    return {k: v[idx] for k, v in q.items()}


def trained_twohop(ds) -> dict:
    """Every two-hop fact of the training set: the default pool of counterfactuals."""
    return two_hop(ds.train)


def _keys(h, r1, r2, R):
    return (np.asarray(h, np.int64) * R + r1) * R + r2


def pool_counterfactuals(ds, queries: dict, pool: dict, seed: int = 0):
    """For every query, one counterfactual per swapped token (h, r1, r2) drawn uniformly
    among the two-hop facts of ``pool`` that differ in that token only and have another
    answer. Returns (queries kept, {swap: counterfactual table}); a query is kept only if
    all three swaps have a candidate, so every swap scores the same queries."""
    tail = tail_table(ds)
    E, R = tail.shape
    allowed = np.unique(_keys(pool["h"], pool["r1"], pool["r2"], R))
    q = two_hop(queries)
    h, r1, r2, t = q["h"], q["r1"], q["r2"], q["t"]
    rng = np.random.default_rng([seed, 41])
    cands = {"h": (np.arange(E)[None, :].repeat(len(h), 0), r1[:, None], r2[:, None]),
             "r1": (h[:, None], np.arange(R)[None, :].repeat(len(h), 0), r2[:, None]),
             "r2": (h[:, None], r1[:, None], np.arange(R)[None, :].repeat(len(h), 0))}
    picks, ok = {}, np.ones(len(h), bool)
    for swap in SWAPS:
        ch, cr1, cr2 = np.broadcast_arrays(*cands[swap])
        b2 = tail[ch, cr1]
        t2 = np.where(b2 >= 0, tail[np.maximum(b2, 0), cr2], -1)
        own = {"h": ch != h[:, None], "r1": cr1 != r1[:, None], "r2": cr2 != r2[:, None]}[swap]
        valid = (t2 >= 0) & (t2 != t[:, None]) & own & np.isin(_keys(ch, cr1, cr2, R), allowed)
        score = np.where(valid, rng.random(valid.shape), -1.0)
        col = score.argmax(1)
        picks[swap] = (ch[np.arange(len(h)), col], cr1[np.arange(len(h)), col],
                       cr2[np.arange(len(h)), col])
        ok &= valid.any(1)
    kept = {k: v[ok] for k, v in q.items()}
    cfs = {}
    for swap, (ch, cr1, cr2) in picks.items():
        cf = {"h": ch[ok], "r1": cr1[ok], "r2": cr2[ok]}
        cf["b"] = tail[cf["h"], cf["r1"]]
        cf["t"] = tail[cf["b"], cf["r2"]]
        cfs[swap] = cf
    return kept, cfs


# ---------------------------------------------------------------- profiles
@dataclass
class Profile:
    """One model's interchange outcomes on one query set: ``switch`` (N, C) says, per
    query and cell, whether the patched output became the model's counterfactual answer;
    ``inert`` / ``whole`` (C,) mark the cells fixed by construction for this model."""
    cells: list                 # (swap, stage, position) per column
    switch: np.ndarray
    inert: np.ndarray
    whole: np.ndarray
    clean_correct: np.ndarray   # (N,) the clean answer is the query's t

    @property
    def informative(self) -> np.ndarray:
        return ~(self.inert | self.whole)

    def rates(self) -> pd.DataFrame:
        swap, stage, pos = zip(*self.cells)
        return pd.DataFrame({"swap": swap, "stage": stage, "position": pos,
                             "rate": self.switch.mean(0) if len(self.switch) else np.nan,
                             "informative": self.informative})


@torch.no_grad()
def _outcomes(model, tokens, cf_tokens, pos, chunk):
    """Per (stage, position): patched predictions (N,), and whether the cell is inert or
    whole; plus the model's clean and counterfactual predictions."""
    sites, cf_sites = Sites(model, tokens, pos, chunk), Sites(model, cf_tokens, pos, chunk)
    clean, cf = sites.clean, cf_sites.clean
    out = []
    for stage in sites.stages:
        for p in range(sites.state(stage).shape[1]):
            lg = sites.patch(stage, p, cf_sites)
            out.append((stage, p, lg.argmax(-1).numpy(),
                        bool(((lg - clean).abs().max() <= TOLERANCE).item()),
                        bool(((lg - cf).abs().max() <= TOLERANCE).item())))
    return out, clean.argmax(-1).numpy(), cf.argmax(-1).numpy()


@torch.no_grad()
def profile(model, ds, queries: dict, cfs: dict, chunk: int = 1024) -> Profile:
    """The interchange profile of ``model`` on ``queries`` with the counterfactuals of
    ``pool_counterfactuals`` (same order)."""
    model.eval()
    tokens, pos, answer = ds.tensors(queries)
    cells, cols, inert, whole = [], [], [], []
    clean_pred = None
    for swap in SWAPS:
        cf_tokens, _, _ = ds.tensors(cfs[swap])
        out, clean_pred, cf_pred = _outcomes(model, tokens, cf_tokens, pos, chunk)
        for stage, p, pred, is_inert, is_whole in out:
            cells.append((swap, stage, p))
            cols.append(pred == cf_pred)
            inert.append(is_inert)
            whole.append(is_whole)
    return Profile(cells=cells, switch=np.stack(cols, 1) if cols else np.zeros((0, 0), bool),
                   inert=np.array(inert), whole=np.array(whole),
                   clean_correct=(clean_pred == answer.numpy()) if clean_pred is not None
                   else np.zeros(0, bool))


def shared_informative(*profiles: Profile) -> np.ndarray:
    """The cells that can tell the profiles apart: all but those inert in every profile
    or whole in every profile (same cell list required). A cell fixed in one model and not
    in the other is kept: that is a difference of function, not of construction."""
    cells = profiles[0].cells
    if any(p.cells != cells for p in profiles):
        raise ValueError("profiles: compare profiles of the same stages and positions")
    return ~(np.logical_and.reduce([p.inert for p in profiles])
             | np.logical_and.reduce([p.whole for p in profiles]))


def construction_mask(reference: Profile) -> np.ndarray:
    """The informative cells: those the randomly initialised ``reference`` leaves neither
    inert nor whole (its architecture fixes the others)."""
    return reference.informative


def distance(a: Profile, b: Profile, rows=None, mask=None) -> float:
    """Mean |rate_a - rate_b| over the informative cells both share (``rows``: a query
    resample, paired for both)."""
    mask = shared_informative(a, b) if mask is None else mask
    if not mask.any():
        return float("nan")
    sa = a.switch if rows is None else a.switch[rows]
    sb = b.switch if rows is None else b.switch[rows]
    return float(np.abs(sa[:, mask].mean(0) - sb[:, mask].mean(0)).mean())


def bootstrap(a: Profile, b: Profile, seed: int = 0, n: int = BOOTSTRAP, mask=None) -> dict:
    """d(a, b) with a percentile interval over query resamples (paired), and the
    resampled distances' ``LEVEL`` percentile (the scale of a seed-to-seed distance)."""
    if len(a.switch) != len(b.switch):
        raise ValueError("profiles: a paired distance needs the same queries in both")
    mask = shared_informative(a, b) if mask is None else mask
    rng = np.random.default_rng([seed, 99])
    N = len(a.switch)
    draws = np.array([distance(a, b, rng.integers(0, N, N), mask) for _ in range(n)]) \
        if N else np.array([np.nan])
    lo, hi = np.nanpercentile(draws, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return {"d": distance(a, b, None, mask), "lo": float(lo), "hi": float(hi),
            "p95": float(np.nanpercentile(draws, 100 * LEVEL)), "cells": int(mask.sum()),
            "queries": int(N)}


def permuted(p: Profile, seed: int = 0, mask=None) -> Profile:
    """A negative control: the profile with its informative cells' columns (``mask``, by
    default its own) shuffled: the same rates, at the wrong sites."""
    idx = np.flatnonzero(p.informative if mask is None else mask)
    perm = idx[np.random.default_rng([seed, 7]).permutation(len(idx))]
    cols = np.arange(len(p.cells))
    cols[idx] = perm
    return Profile(p.cells, p.switch[:, cols], p.inert, p.whole, p.clean_correct)


# ---------------------------------------------------------------- the rule
def path_rule(d: dict, seed_scale: dict, negatives: dict,
              pair: str = "d(before, after)", scale_name: str = "seed-to-seed"
              ) -> tuple[str, str]:
    """(outcome, reason) for d(before, after) = ``d`` (a ``bootstrap`` dict; ``pair`` names
    the distance in the reason, e.g. "d(after, shortcut)").

    ``seed_scale`` is the bootstrap of d(after, same config under another training seed);
    its ``p95`` is the scale of "same". ``negatives`` maps each negative control to its
    bootstrap of d(after, control); ``scale_name`` names the scale in the reason (the
    caller may pass the larger of several scales). Rule:

    - **undetermined** if a negative control's interval reaches down to the seed scale
      (lower end <= CLEAR_MARGIN x seed p95): the metric does not discriminate;
    - **same** if d(before, after) <= seed p95;
    - **different** if the lower end of d(before, after)'s interval > seed p95;
    - **undetermined** otherwise (the interval straddles the scale).
    """
    scale = seed_scale["p95"]
    weak = [k for k, v in negatives.items() if not v["lo"] > CLEAR_MARGIN * scale]
    if not np.isfinite(scale) or not np.isfinite(d["d"]):
        return UNDETERMINED, "a distance could not be computed (no informative cell)"
    if weak:
        return UNDETERMINED, (f"the negative control(s) {', '.join(weak)} are not clearly "
                              f"farther than the {scale_name} scale {scale:.3f}")
    if d["d"] <= scale:
        return SAME, (f"{pair} {d['d']:.3f} is within the {scale_name} 95th "
                      f"percentile {scale:.3f}")
    if d["lo"] > scale:
        return DIFFERENT, (f"{pair} {d['d']:.3f} (interval from {d['lo']:.3f}) "
                           f"exceeds the {scale_name} 95th percentile {scale:.3f}")
    return UNDETERMINED, (f"{pair} {d['d']:.3f} exceeds the {scale_name} scale "
                          f"{scale:.3f} but its interval reaches down to {d['lo']:.3f}")


# ---------------------------------------------------------------- the bridge, directly
def atomic_donors(ds, queries: dict, pool: dict, seed: int = 0):
    """For every query (h, r1, r2) -> t with bridge b, an atomic fact (h', r1', b') of
    ``pool`` with b' != b and tail(b', r2) defined and != t. Returns (kept mask, donor
    table (atomic rows), expected answer tail(b', r2))."""
    tail = tail_table(ds)
    q = two_hop(queries)
    ph, pr, pb = (np.asarray(pool[k]) for k in ("h", "r1", "t"))
    t_via = np.where(pb[None, :] >= 0, tail[pb][:, q["r2"]].T, -1)      # (N, P)
    valid = (pb[None, :] != q["b"][:, None]) & (t_via >= 0) & (t_via != q["t"][:, None])
    score = np.where(valid, np.random.default_rng([seed, 3]).random(valid.shape), -1.0)
    col = score.argmax(1)
    keep = valid.any(1)
    donor = {"h": ph[col][keep], "r1": pr[col][keep], "r2": np.full(keep.sum(), -1),
             "b": pb[col][keep], "t": pb[col][keep]}
    return keep, donor, t_via[np.arange(len(col)), col][keep]


@torch.no_grad()
def bridge_interchange(model, ds, queries: dict, pool: dict, seed: int = 0,
                       chunk: int = 1024) -> pd.DataFrame:
    """Per stage: the share of queries whose output becomes tail(b', r2) when the r1-position
    state of an atomic donor with bridge b' is copied in (``rate``), and the share that
    keeps the clean output (``kept``)."""
    model.eval()
    keep, donor, expected = atomic_donors(ds, queries, pool, seed)
    q = {k: v[keep] for k, v in two_hop(queries).items()}
    tokens, pos, _ = ds.tensors(q)
    d_tokens, d_pos, _ = ds.tensors(donor)
    if not len(tokens):
        return pd.DataFrame(columns=["stage", "layer", "rate", "kept", "n"])
    sites, donors = Sites(model, tokens, pos, chunk), Sites(model, d_tokens, d_pos, chunk)
    clean = sites.clean.argmax(-1)
    out = []
    for layer, stage in enumerate(sites.stages):
        pred = sites.patch(stage, R1_POSITION, donors).argmax(-1)
        out.append({"stage": stage, "layer": layer,
                    "rate": float((pred.numpy() == expected).mean()),
                    "kept": float((pred == clean).float().mean()), "n": int(len(tokens))})
    return pd.DataFrame(out)


def bridge_lens(model, ds, queries: dict) -> pd.DataFrame:
    """Per stage: the share of queries whose bridge b is top-1 at the r1 position."""
    q = two_hop(queries)
    stages, _, lens = site_lens(model, ds, q, targets=("b",))
    rank = lens["b"][0]                                                # (S, N, T)
    return pd.DataFrame({"stage": stages, "layer": range(len(stages)),
                         "bridge_top1": (rank[:, :, R1_POSITION] == 1).mean(1)})
