"""Causal tracing (Wang et al. 2024), batched over hundreds of queries at once.

For each two-hop query (h, r1, r2) -> t a *counterfactual* query changes exactly one
token (h, r1 or r2) so that its answer differs. Then, for every (stage, position), the
clean run's residual state at that site is replaced by the counterfactual's and the rest
of the model is recomputed::

    x = cache[s].clone(); x[:, p] = cf_cache[s][:, p]
    logits = model.unembed(model.run_from(s, x))[:, answer_pos]

The *strength* of a site is the fraction of queries whose clean target stops being the
top-1 token; ``prob_drop`` is the mean fall of the target's probability. A site that
carries the information the swapped token brings has high strength. He et al. (2026)
do no patching; the book adds it to compare inference paths.

How counterfactuals are drawn (``counterfactuals``), from the whole atomic graph
(ID and OOD facts alike), with a generator seeded by ``seed``:

- swap ``h``: a uniformly drawn entity h' != h such that (h', r1, r2) is itself a valid
  two-hop fact of the graph (h' has relation r1 to some b', b' has relation r2) and its
  answer t' != t. r1 and r2 are kept.
- swap ``r1``: a relation r1' != r1 of h such that (h, r1', r2) is a valid two-hop fact
  with answer != t. h and r2 are kept.
- swap ``r2``: a relation r2' != r2 of the bridge b with tail != t. h and r1 are kept.

A query with no such candidate is left out of that swap (the table's ``n`` column says
how many queries each cell averages over). Atomic rows of the query table are ignored.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .sites import Sites, two_hop

SWAPS = ("h", "r1", "r2")


def tail_table(ds) -> np.ndarray:
    """Dense lookup ``tail[h, r]`` over every atomic fact of the graph (-1 where none)."""
    E, R = ds.vocab.n_entities, ds.vocab.n_relations
    tail = np.full((E, R), -1, dtype=np.int64)
    a = ds.atomic
    tail[a["h"], a["r1"]] = a["t"]
    return tail


def _pick(valid: np.ndarray, rng: np.random.Generator):
    """One uniformly drawn True column per row of ``valid`` (N, K); -1 where none."""
    score = np.where(valid, rng.random(valid.shape), -1.0)
    choice = score.argmax(1)
    return np.where(valid.any(1), choice, -1)


def counterfactuals(ds, queries: dict, swap: str, seed: int = 0):
    """(counterfactual table, keep) for the two-hop rows of ``queries``.

    ``keep`` is a boolean mask over the two-hop rows: True where a counterfactual exists;
    the returned table holds only those rows, aligned with ``queries`` rows ``keep``.
    See the module docstring for the exact rule per swapped token.
    """
    if swap not in SWAPS:
        raise ValueError(f"swap: {swap!r} is not allowed; allowed: {', '.join(SWAPS)}")
    q = two_hop(queries)
    tail = tail_table(ds)
    E, R = tail.shape
    rng = np.random.default_rng([seed, SWAPS.index(swap)])
    h, r1, r2, t = q["h"], q["r1"], q["r2"], q["t"]
    if swap == "h":
        b2 = tail[:, r1].T                                          # (N, E): tail(h', r1)
        t2 = np.where(b2 >= 0, tail[np.maximum(b2, 0), r2[:, None]], -1)
        valid = (t2 >= 0) & (t2 != t[:, None]) & (np.arange(E)[None] != h[:, None])
        c = _pick(valid, rng)
        new = dict(h=c, r1=r1, r2=r2)
    elif swap == "r1":
        b2 = tail[h]                                                # (N, R): tail(h, r1')
        t2 = np.where(b2 >= 0, tail[np.maximum(b2, 0), r2[:, None]], -1)
        valid = (t2 >= 0) & (t2 != t[:, None]) & (np.arange(R)[None] != r1[:, None])
        c = _pick(valid, rng)
        new = dict(h=h, r1=c, r2=r2)
    else:
        b = tail[h, r1]
        t2 = tail[b]                                                # (N, R): tail(b, r2')
        valid = (t2 >= 0) & (t2 != t[:, None]) & (np.arange(R)[None] != r2[:, None])
        c = _pick(valid, rng)
        new = dict(h=h, r1=r1, r2=c)
    keep = c >= 0
    cf = {k: np.asarray(v)[keep].astype(np.int64) for k, v in new.items()}
    cf["b"] = tail[cf["h"], cf["r1"]]
    cf["t"] = tail[cf["b"], cf["r2"]]
    return cf, keep


@torch.no_grad()
def patch_effects(model, tokens, cf_tokens, answer_pos, target, chunk: int = 1024):
    """Strength at every (stage, position) of patching ``cf_tokens``' states into the
    clean run of ``tokens``. Returns a DataFrame with columns stage, layer, position,
    strength (fraction whose ``target`` stops being top-1), prob_drop, n."""
    clean, cf = Sites(model, tokens, answer_pos, chunk), Sites(model, cf_tokens, answer_pos,
                                                              chunk)
    n = len(tokens)
    rows_idx = torch.arange(n)
    target = torch.as_tensor(target)
    # the unpatched run, recomputed from the first stage
    clean_p = torch.softmax(clean.clean, -1)[rows_idx, target]
    rows = []
    for layer, stage in enumerate(model.stage_names):
        if stage not in clean.cache:
            continue
        for p in range(clean.state(stage).shape[1]):
            logits = clean.patch(stage, p, cf)                                # (N, V)
            still_top = logits.argmax(-1) == target
            prob = torch.softmax(logits, -1)[rows_idx, target]
            rows.append({"stage": stage, "layer": layer, "position": p,
                         "strength": float(1.0 - still_top.float().mean()) if n else np.nan,
                         "prob_drop": float((clean_p - prob).mean()) if n else np.nan,
                         "n": n})
    return pd.DataFrame(rows)


@torch.no_grad()
def causal_tracing(model, ds, queries: dict, swaps=SWAPS, target: str = "prediction",
                   seed: int = 0, chunk: int = 1024) -> pd.DataFrame:
    """Tidy tracing table over the two-hop rows of ``queries``.

    ``target="prediction"`` (default) traces the clean run's own top-1 token (the answer t
    wherever the model is right), so a checkpoint that has not learned a probe set can
    still be traced; ``target="answer"`` traces t and keeps only the queries the clean
    run answers correctly. Columns: swap, stage, layer, position, strength, prob_drop,
    n (queries averaged over), clean_accuracy (of the clean run on those queries).
    """
    if target not in ("prediction", "answer"):
        raise ValueError(f"target: {target!r} is not allowed; allowed: prediction, answer")
    model.eval()
    q = two_hop(queries)
    tables = []
    for swap in swaps:
        cf, keep = counterfactuals(ds, q, swap, seed)
        clean = {k: v[keep] for k, v in q.items()}
        tokens, pos, answer = ds.tensors(clean)
        cf_tokens, _, _ = ds.tensors(cf)
        if len(tokens):
            sites = Sites(model, tokens, pos, chunk)
            pred = sites.logits[torch.arange(len(tokens)), sites.at].argmax(-1)
        else:
            pred = answer
        correct = pred == answer
        acc = float(correct.float().mean()) if len(tokens) else float("nan")
        tgt = pred
        if target == "answer":
            tokens, cf_tokens, pos, tgt = (tokens[correct], cf_tokens[correct], pos[correct],
                                           answer[correct])
        if len(tokens):
            df = patch_effects(model, tokens, cf_tokens, pos, tgt, chunk)
        else:  # nothing to trace (e.g. no correct answer): the same cells, empty
            df = patch_effects(model, *[v[:1] for v in ds.tensors(q)[:1] * 2],
                               ds.tensors(q)[1][:1], ds.tensors(q)[2][:1], chunk)
            df[["strength", "prob_drop"]] = np.nan
            df["n"] = 0
        df.insert(0, "swap", swap)
        df["clean_accuracy"] = acc
        tables.append(df)
    return pd.concat(tables, ignore_index=True)


def heatmap_matrix(tracing: pd.DataFrame, value: str = "strength") -> pd.DataFrame:
    """Wide (swap, stage) x position matrix of one value, rows ordered by layer."""
    t = tracing.sort_values(["swap", "layer", "position"])
    return t.pivot_table(index=["swap", "layer", "stage"], columns="position", values=value,
                         sort=True)


def tracing_heatmap(df: pd.DataFrame, value: str = "strength", title: str | None = None):
    """Altair heatmap: stage (rows, first at the bottom) x position (columns), one panel
    per swapped token; colour = ``value`` in [0, 1]. Extra columns (e.g. ``checkpoint``)
    are kept for tooltips and filters."""
    import altair as alt
    order = list(df.sort_values("layer")["stage"].astype(str).drop_duplicates())[::-1]
    d = df.assign(stage=df["stage"].astype(str))
    base = alt.Chart(d).mark_rect().encode(
        x=alt.X("position:O", title="position"),
        y=alt.Y("stage:N", sort=order, title="stage"),
        color=alt.Color(f"{value}:Q", scale=alt.Scale(domain=[0, 1], scheme="orangered"),
                        title=value),
        tooltip=["swap", "stage", "position", alt.Tooltip("strength:Q", format=".3f"),
                 alt.Tooltip("prob_drop:Q", format=".3f"), "n"],
    ).properties(width=110, height=150)
    chart = base.facet(column=alt.Column("swap:N", title="swapped token",
                                         sort=list(SWAPS)))
    return chart.properties(title=title) if title else chart
