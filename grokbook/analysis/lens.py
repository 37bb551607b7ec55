"""The logit lens: read every residual state through the final norm and the unembedding.

For a table of two-hop queries and one model, ``logit_lens`` runs the model once with its
cache and, at every (stage, position), ranks a chosen token among the whole vocabulary:
the bridge entity ``b`` (Wang et al. 2024 decode it at the r1 position, position 1, in the
middle layers), the second relation ``r2``, or the answer ``t``. It only uses the model's
analysis interface (``stage_names``, ``run_with_cache``, ``unembed``), so it serves the
transformer, its looped variant and the recursive model alike; the number of positions
is read from the cache, not assumed to be 3.

The primitive is ``site_lens``: the rank (1 = top, ties count as top) and probability of
a target token at every named site (stage x position) of a batch of queries. Every rule
is written on it; two say whether "the bridge was found" for a query:

- **strict**: ``b`` is the top-1 token at the r1 position (position 1) at one given stage;
- **lenient** (He et al. 2026): ``b`` is the top-1 token at *any* stage and *any* position.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .definitions import BRIDGE_READABLE, R1_POSITION
from .sites import Sites, two_hop

TARGETS = ("b", "r2", "t")


def target_tokens(ds, queries: dict, kind: str) -> np.ndarray:
    """Token id of the chosen target of every query: ``b`` / ``t`` (entities) or ``r2``."""
    if kind in ("b", "t", "h"):
        return np.asarray(queries[kind], dtype=np.int64)
    if kind in ("r1", "r2"):
        return np.asarray(ds.vocab.relation(queries[kind]), dtype=np.int64)
    raise ValueError(f"target: {kind!r} is not allowed; allowed: b, r2, t, h, r1")


@torch.no_grad()
def rank_and_prob(logits: torch.Tensor, token: torch.Tensor):
    """Rank (1 = top) and probability of ``token`` (N,) in ``logits`` (N, T, V), per position."""
    idx = token.view(-1, 1, 1).expand(-1, logits.shape[1], 1)
    chosen = logits.gather(-1, idx)                                   # (N, T, 1)
    rank = 1 + (logits > chosen).sum(-1)                              # (N, T)
    prob = torch.softmax(logits, -1).gather(-1, idx).squeeze(-1)      # (N, T)
    return rank, prob


@torch.no_grad()
def site_lens(model, ds, queries: dict, targets=TARGETS, chunk: int = 2048):
    """The lens at every named site of ``queries`` (a query table; two-hop rows unless the
    targets need none): ``(stages, correct (N,), {target: (rank (S, N, T), prob (S, N, T))})``.
    ``correct`` says whether the model's answer is the query's ``t``."""
    tokens, pos, y = ds.tensors(queries)
    sites = Sites(model, tokens, pos, chunk)          # the TRM answers in an appended slot
    correct = (sites.logits[torch.arange(len(tokens)), sites.at].argmax(-1) == y).numpy()
    wanted = {k: torch.as_tensor(target_tokens(ds, queries, k)) for k in targets}
    stages, cache = sites.stages, sites.cache
    out = {k: ([], []) for k in targets}
    for stage in stages:
        lg = model.unembed(cache[stage]).float()                        # (N, T, V)
        for kind, tok in wanted.items():
            rank, prob = rank_and_prob(lg, tok)
            out[kind][0].append(rank)
            out[kind][1].append(prob)
    return stages, correct, {k: (torch.stack(r).numpy(), torch.stack(p).numpy())
                             for k, (r, p) in out.items()}


@torch.no_grad()
def bridge_checks(model, ds, queries: dict, stage: str) -> dict:
    """Both bridge rules' positive checks from one lens pass: among the two-hop ``queries``
    the model answers, the share where b is top-1 at the r1 position at ``stage``
    (``strict``) or at any stage and position (``lenient``). A rule that cannot see the
    bridge where the model composes cannot say a model lacks it. Per rule: {"stage",
    "rate", "answered", "readable" (rate >= ``BRIDGE_READABLE``)}."""
    stages, correct, lens = site_lens(model, ds, queries, targets=("b",))
    top = lens["b"][0] == 1                                     # (stages, queries, positions)
    n = int(correct.sum())
    out = {}
    for rule, seen in (("strict", top[stages.index(stage), :, R1_POSITION]),
                       ("lenient", top.any(axis=(0, 2)))):
        rate = float(seen[correct].mean()) if n else float("nan")
        out[rule] = {"stage": stage, "rate": rate, "answered": n,
                     "readable": bool(rate >= BRIDGE_READABLE)}
    return out


def strict_check(model, ds, queries: dict, stage: str) -> dict:
    """The strict rule's positive check alone (``bridge_checks``)."""
    return bridge_checks(model, ds, queries, stage)["strict"]


@torch.no_grad()
def logit_lens(model, ds, queries: dict, targets=TARGETS, chunk: int = 2048) -> pd.DataFrame:
    """Tidy lens table for two-hop ``queries`` (atomic rows are dropped).

    Columns: stage, layer (index of the stage in ``model.stage_names``), position,
    target (``b``, ``r2`` or ``t``), query (row of the two-hop table), rank (1 = top-1),
    prob. One row per (stage, position, target, query).
    """
    q = two_hop(queries)
    n = len(q["h"])
    if n == 0:
        return pd.DataFrame(columns=["stage", "layer", "position", "target", "query", "rank",
                                     "prob"])
    stages, _, lens = site_lens(model, ds, q, targets, chunk)
    layer_of = {s: i for i, s in enumerate(model.stage_names)}
    parts = []
    for si, stage in enumerate(stages):
        for kind in targets:
            rank, prob = lens[kind][0][si], lens[kind][1][si]             # (N, T)
            T = rank.shape[1]
            parts.append(pd.DataFrame({
                "stage": stage, "layer": layer_of[stage],
                "position": np.tile(np.arange(T), n),
                "target": kind, "query": np.repeat(np.arange(n), T),
                "rank": rank.reshape(-1), "prob": prob.reshape(-1)}))
    df = pd.concat(parts, ignore_index=True)
    df["stage"] = pd.Categorical(df["stage"], categories=list(model.stage_names), ordered=True)
    return df


def lens_summary(lens: pd.DataFrame) -> pd.DataFrame:
    """Per (stage, layer, position, target): mean reciprocal rank, top-1 rate, mean prob."""
    g = lens.assign(rr=1.0 / lens["rank"], top1=(lens["rank"] == 1).astype(float))
    out = g.groupby(["stage", "layer", "position", "target"], observed=True).agg(
        mrr=("rr", "mean"), top1=("top1", "mean"), prob=("prob", "mean"),
        n=("query", "size")).reset_index()
    out["stage"] = out["stage"].astype(str)
    return out


def bridge_profile(lens: pd.DataFrame, position: int = R1_POSITION) -> pd.DataFrame:
    """The bridge ``b`` at one position across stages: layer, stage, mrr, top1, prob."""
    s = lens_summary(lens[lens["target"] == "b"])
    return s[s["position"] == position].sort_values("layer").reset_index(drop=True)


def bridge_first_layer(lens: pd.DataFrame, threshold: float = 0.5,
                       position: int = R1_POSITION):
    """First stage index where ``b`` is top-1 at ``position`` for at least ``threshold`` of
    the queries (None if never)."""
    prof = bridge_profile(lens, position)
    hit = prof[prof["top1"] >= threshold]
    return int(hit["layer"].iloc[0]) if len(hit) else None


def bridge_found(lens: pd.DataFrame, stage=None) -> pd.DataFrame:
    """Per query: ``strict`` (b top-1 at the r1 position at ``stage``) and ``lenient``
    (b top-1 at any stage and any position).

    ``stage`` is a stage name or index; by default the stage whose strict rate is
    highest (the best single stage, reported in the ``strict_stage`` column).
    """
    b = lens[lens["target"] == "b"]
    top = b.assign(top1=b["rank"] == 1)
    lenient = top.groupby("query")["top1"].any()
    at_r1 = top[top["position"] == R1_POSITION]
    rates = at_r1.groupby("layer")["top1"].mean()
    if stage is None:
        layer = int(rates.idxmax()) if len(rates) else 0
    elif isinstance(stage, str):
        layer = int(b.loc[b["stage"] == stage, "layer"].iloc[0])
    else:
        layer = int(stage)
    strict = at_r1[at_r1["layer"] == layer].set_index("query")["top1"]
    name = str(b.loc[b["layer"] == layer, "stage"].iloc[0]) if len(b) else ""
    out = pd.DataFrame({"strict": strict.reindex(lenient.index, fill_value=False),
                        "lenient": lenient}).reset_index()
    out["strict_stage"] = name
    return out


def lenient_rate(lens: pd.DataFrame, target: str = "t") -> float:
    """Share of queries whose ``target`` is the top-1 token at any stage and any position:
    for ``t``, what the study plots as its "final answer accuracy" curve."""
    x = lens[lens["target"] == target]
    if not len(x):
        return float("nan")
    return float((x["rank"] == 1).groupby(x["query"]).any().mean())


def bridge_rates(lens: pd.DataFrame, stage=None) -> dict:
    """Rates of the two bridge rules (see ``bridge_found``)."""
    f = bridge_found(lens, stage)
    return {"strict": float(f["strict"].mean()) if len(f) else float("nan"),
            "lenient": float(f["lenient"].mean()) if len(f) else float("nan"),
            "strict_stage": f["strict_stage"].iloc[0] if len(f) else None,
            "n": int(len(f))}


def lens_chart(summary: pd.DataFrame, target: str = "b", metric: str = "mrr"):
    """Altair heatmap of a lens summary: stage x position, colour = ``metric``."""
    import altair as alt
    d = summary[summary["target"] == target]
    order = list(d.sort_values("layer")["stage"].drop_duplicates())
    return alt.Chart(d).mark_rect().encode(
        x=alt.X("position:O", title="position"),
        y=alt.Y("stage:N", sort=order[::-1], title="stage"),
        color=alt.Color(f"{metric}:Q", scale=alt.Scale(domain=[0, 1], scheme="blues")),
        tooltip=["stage", "position", alt.Tooltip(f"{metric}:Q", format=".3f"),
                 alt.Tooltip("top1:Q", format=".3f")],
    ).properties(title=f"logit lens: {target} ({metric})", width=120, height=160)
