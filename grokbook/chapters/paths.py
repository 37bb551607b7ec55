"""Inference paths: a checkpoint's causal-tracing heatmap plus its logit-lens profile on
the same queries, how to compare two of them, and which checkpoints to compare.

Claim 1 of He et al. (2026): on in-distribution two-hop queries a model before grokking
(train accuracy saturated, held-out ID accuracy low) and after grokking use the *same*
inference path. Wang et al. (2024) describe that path: the bridge entity becomes
decodable in the middle layers at the r1 position, and the upper layers read it there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..analysis.definitions import checkpoint_accuracy, grokked_checkpoint, non_grokked_checkpoint
from ..analysis.lens import bridge_first_layer, bridge_rates, lens_summary, logit_lens
from ..analysis.patching import causal_tracing, heatmap_matrix, tracing_heatmap

# ---------------------------------------------------------------- checkpoint selection
def checkpoint_pair(run) -> dict:
    """The two checkpoints chapter 4 compares, with labels and a note that says what
    they are. Falls back to the first non-zero checkpoint / the final checkpoint when a
    non-grokked / grokked checkpoint does not exist at this scale (``found`` says so)."""
    a, b = non_grokked_checkpoint(run), grokked_checkpoint(run)
    ckpts = [s for s in run.checkpoints if s > 0] or run.checkpoints
    acc = checkpoint_accuracy(run)
    out = {"non_grokked": a, "grokked": b,
           "step_a": a if a is not None else ckpts[0],
           "step_b": b if b is not None else ckpts[-1],
           "label_a": "non-grokked" if a is not None else "early (not memorized)",
           "label_b": "grokked" if b is not None else "final (not grokked)",
           "found": a is not None and b is not None}
    for key in ("a", "b"):
        s = out[f"step_{key}"]
        out[f"acc_{key}"] = {k: round(float(v), 3) for k, v in acc.loc[s].items()}
    return out


# ---------------------------------------------------------------- summaries
@dataclass
class PathSummary:
    run: str
    step: int
    probe: str
    tracing: pd.DataFrame          # causal_tracing table
    lens: pd.DataFrame             # lens_summary table
    bridge: dict                   # bridge_rates
    bridge_first: int | None       # first stage index with b top-1 at r1 for >= half
    stage_names: list = field(default_factory=list)

    @property
    def heatmap(self) -> pd.DataFrame:
        return heatmap_matrix(self.tracing)


def _probe_rows(run, queries, n_queries):
    name = queries if isinstance(queries, str) else "custom"
    table = run.dataset.probes[queries] if isinstance(queries, str) else queries
    if n_queries is not None:
        table = {k: np.asarray(v)[:n_queries] for k, v in table.items()}
    return name, table


def path_summary(run, step, queries="train_inferred", n_queries: int | None = 300,
                 seed: int = 0, bridge_threshold: float = 0.5, model=None) -> PathSummary:
    """Tracing heatmap + lens profile of checkpoint ``step`` on the same queries
    (a probe name or a query table; the first ``n_queries`` two-hop rows)."""
    probe, table = _probe_rows(run, queries, n_queries)
    model = model if model is not None else run.load_model(step)
    ds = run.dataset
    tracing = causal_tracing(model, ds, table, seed=seed)
    lens = logit_lens(model, ds, table)
    return PathSummary(run=run.id, step=int(step), probe=probe, tracing=tracing,
                       lens=lens_summary(lens), bridge=bridge_rates(lens),
                       bridge_first=bridge_first_layer(lens, bridge_threshold),
                       stage_names=list(model.stage_names))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return float("nan")
    if np.allclose(x, y):
        return 1.0
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def compare_paths(a: PathSummary, b: PathSummary) -> dict:
    """Similarity of two inference paths.

    - ``heatmap_correlation``: Pearson correlation of the two tracing heatmaps over every
      (swap, stage, position) cell both have (1.0 when identical);
    - ``bridge_first_a`` / ``_b`` and ``bridge_first_diff``: the first stage where the
      bridge is decodable (top-1) at the r1 position for at least half of the queries;
    - the strict and lenient bridge rates of both.
    """
    ha = a.tracing.set_index(["swap", "layer", "position"])["strength"]
    hb = b.tracing.set_index(["swap", "layer", "position"])["strength"]
    common = ha.index.intersection(hb.index)
    x, y = ha.loc[common].to_numpy(float), hb.loc[common].to_numpy(float)
    ok = ~(np.isnan(x) | np.isnan(y))
    fa, fb = a.bridge_first, b.bridge_first
    return {"step_a": a.step, "step_b": b.step, "probe_a": a.probe, "probe_b": b.probe,
            "cells": int(ok.sum()),
            "heatmap_correlation": _pearson(x[ok], y[ok]),
            "heatmap_mean_abs_diff": float(np.abs(x[ok] - y[ok]).mean()) if ok.any() else np.nan,
            "bridge_first_a": fa, "bridge_first_b": fb,
            "bridge_first_diff": abs(fa - fb) if fa is not None and fb is not None else None,
            "strict_a": a.bridge["strict"], "strict_b": b.bridge["strict"],
            "lenient_a": a.bridge["lenient"], "lenient_b": b.bridge["lenient"]}


def verdict(cmp: dict, min_correlation: float = 0.8, max_layer_diff: int = 1) -> str:
    """"same", "different" or "undetermined".

    Rule: **same path** if the heatmap correlation is >= ``min_correlation`` (0.8) and the
    bridge-first stage differs by at most ``max_layer_diff`` (1) stage, or the bridge is
    decodable at r1 in neither checkpoint. **different** if the correlation is below
    ``min_correlation``, the bridge-first stages differ by more, or the bridge is decodable
    in one checkpoint and not in the other. **undetermined** if the correlation cannot be
    computed (a constant heatmap, or no cells).
    """
    r = cmp["heatmap_correlation"]
    if r is None or np.isnan(r):
        return "undetermined"
    fa, fb = cmp["bridge_first_a"], cmp["bridge_first_b"]
    bridge_same = (fa is None and fb is None) or (
        fa is not None and fb is not None and abs(fa - fb) <= max_layer_diff)
    return "same" if r >= min_correlation and bridge_same else "different"


def comparison_table(cmp: dict, label_a: str = "a", label_b: str = "b") -> pd.DataFrame:
    """The comparison as a readable two-column table."""
    rows = [("step", cmp["step_a"], cmp["step_b"]),
            ("bridge top-1 at r1, strict (best stage)", cmp["strict_a"], cmp["strict_b"]),
            ("bridge top-1 anywhere, lenient", cmp["lenient_a"], cmp["lenient_b"]),
            ("first stage with bridge at r1 (index)", cmp["bridge_first_a"],
             cmp["bridge_first_b"])]
    return pd.DataFrame(rows, columns=["measure", label_a, label_b]).set_index("measure")


# ---------------------------------------------------------------- charts
def heatmaps_side_by_side(summaries, labels):
    """Tracing heatmaps of several summaries, one row of panels each."""
    import altair as alt
    charts = [tracing_heatmap(s.tracing, title=f"{lab} (step {s.step}, {s.probe})")
              for s, lab in zip(summaries, labels)]
    return alt.vconcat(*charts)


def bridge_curves(summaries, labels, metric: str = "mrr"):
    """Lens curve of the bridge at the r1 position across stages, one line per summary."""
    import altair as alt
    rows = []
    for s, lab in zip(summaries, labels):
        prof = s.lens[(s.lens["target"] == "b") & (s.lens["position"] == 1)]
        rows.append(prof.assign(checkpoint=f"{lab} (step {s.step})"))
    d = pd.concat(rows, ignore_index=True)
    order = list(d.sort_values("layer")["stage"].drop_duplicates())
    return alt.Chart(d).mark_line(point=True).encode(
        x=alt.X("stage:N", sort=order, title="stage"),
        y=alt.Y(f"{metric}:Q", scale=alt.Scale(domain=[0, 1]),
                title=f"bridge at r1: {metric}"),
        color=alt.Color("checkpoint:N"),
        tooltip=["checkpoint", "stage", alt.Tooltip("mrr:Q", format=".3f"),
                 alt.Tooltip("top1:Q", format=".3f")],
    ).properties(width=320, height=200)


# ---------------------------------------------------------------- scrubber
def scrub_table(run, queries="train_inferred", n_queries: int | None = 200,
                steps=None, seed: int = 0) -> dict:
    """Tracing and bridge-lens tables for every checkpoint (for the scrubber).
    Returns {"tracing": ..., "lens": ..., "steps": [...]} with ``checkpoint`` (index) and
    ``step`` columns."""
    steps = list(steps if steps is not None else run.checkpoints)
    tr, ln = [], []
    for i, s in enumerate(steps):
        p = path_summary(run, s, queries, n_queries, seed)
        tr.append(p.tracing.assign(checkpoint=i, step=s))
        ln.append(p.lens[p.lens["target"] == "b"].assign(checkpoint=i, step=s))
    return {"tracing": pd.concat(tr, ignore_index=True),
            "lens": pd.concat(ln, ignore_index=True), "steps": steps}


def scrubber_chart(scrub: dict, accuracy: pd.DataFrame | None = None):
    """Static-page scrubber: an Altair slider over checkpoints drives the tracing heatmap
    (per swapped token) and the bridge lens curve at r1; the accuracy curves mark the
    chosen step. Works without a kernel."""
    import altair as alt
    steps = scrub["steps"]
    pick = alt.param(name="checkpoint", value=len(steps) - 1,
                     bind=alt.binding_range(min=0, max=len(steps) - 1, step=1,
                                            name="checkpoint index "))
    tr = scrub["tracing"].assign(stage=scrub["tracing"]["stage"].astype(str))
    order = list(tr.sort_values("layer")["stage"].drop_duplicates())
    heat = alt.Chart(tr).mark_rect().encode(
        x=alt.X("position:O"), y=alt.Y("stage:N", sort=order[::-1]),
        color=alt.Color("strength:Q", scale=alt.Scale(domain=[0, 1], scheme="orangered")),
        column=alt.Column("swap:N", sort=["h", "r1", "r2"], title="swapped token"),
        tooltip=["step", "swap", "stage", "position", alt.Tooltip("strength:Q", format=".3f")],
    ).transform_filter(alt.datum.checkpoint == pick).properties(
        width=100, height=140, title="causal tracing at the chosen checkpoint")
    ln = scrub["lens"][scrub["lens"]["position"] == 1]
    ln = ln.assign(stage=ln["stage"].astype(str))
    lens = alt.Chart(ln).mark_line(point=True).encode(
        x=alt.X("stage:N", sort=order), y=alt.Y("mrr:Q", scale=alt.Scale(domain=[0, 1]),
                                                title="bridge at r1: MRR"),
        tooltip=["step", "stage", alt.Tooltip("mrr:Q", format=".3f"),
                 alt.Tooltip("top1:Q", format=".3f")],
    ).transform_filter(alt.datum.checkpoint == pick).properties(
        width=260, height=160, title="logit lens at the chosen checkpoint")
    parts = [heat, lens]
    if accuracy is not None:
        acc = accuracy.reset_index().melt("step", var_name="split", value_name="accuracy")
        acc = acc[acc["split"].isin(["train_inferred", "test_inferred_iid",
                                     "test_inferred_ood"])]
        idx = pd.DataFrame({"checkpoint": range(len(steps)), "step": steps})
        curve = alt.Chart(acc).mark_line().encode(x="step:Q", y="accuracy:Q", color="split:N")
        rule = alt.Chart(idx).mark_rule(color="black").encode(x="step:Q").transform_filter(
            alt.datum.checkpoint == pick)
        parts.append((curve + rule).properties(width=260, height=160,
                                               title="accuracy; rule = chosen checkpoint"))
    return alt.vconcat(heat, alt.hconcat(*parts[1:])).add_params(pick)


def scrubber_widget(scrub: dict):
    """Live version of the scrubber (ipywidgets slider over checkpoints)."""
    import ipywidgets as widgets
    from IPython.display import display
    steps = scrub["steps"]

    def show(checkpoint):
        t = scrub["tracing"]
        display(tracing_heatmap(t[t["checkpoint"] == checkpoint],
                                title=f"step {steps[checkpoint]}"))

    slider = widgets.IntSlider(value=len(steps) - 1, min=0, max=len(steps) - 1,
                               description="checkpoint")
    return widgets.interactive(show, checkpoint=slider)


# ---------------------------------------------------------------- computed prose
def describe_pair(pair: dict) -> str:
    """What the two compared checkpoints are, computed."""
    a, b = pair["acc_a"], pair["acc_b"]

    def acc(d):
        return ", ".join(f"{k} {d[k]:.2f}" for k in ("train_inferred", "test_inferred_iid")
                         if k in d)
    text = (f"Checkpoint A is step {pair['step_a']} ({pair['label_a']}: {acc(a)}); "
            f"checkpoint B is step {pair['step_b']} ({pair['label_b']}: {acc(b)}).")
    if not pair["found"]:
        missing = [n for n, k in (("a non-grokked", "non_grokked"), ("a grokked", "grokked"))
                   if pair[k] is None]
        text += (f" This run has no {' and no '.join(m.split(' ', 1)[1] for m in missing)} "
                 f"checkpoint at this preset, so the comparison below is between the stand-ins "
                 f"named above and does not test claim 1 directly.")
    return text


def describe_comparison(cmp: dict, pair: dict, probe: str) -> str:
    """The verdict and the numbers behind it, computed."""
    v = verdict(cmp)
    fa, fb = cmp["bridge_first_a"], cmp["bridge_first_b"]

    def first(f):
        return "at no stage" if f is None else f"from stage index {f} on"
    r = cmp["heatmap_correlation"]
    rtext = "undefined" if r is None or np.isnan(r) else f"{r:.2f}"
    return (f"On `{probe}`: heatmap correlation {rtext} over {cmp['cells']} cells; the bridge "
            f"is decodable at r1 (top-1 for at least half of the queries) {first(fa)} in "
            f"{pair['label_a']} and {first(fb)} in {pair['label_b']}. "
            f"Verdict by the rule of `grokbook.paths.verdict`: "
            f"**{v}**" + ("" if pair["found"] else " (between stand-in checkpoints)") + ".")
