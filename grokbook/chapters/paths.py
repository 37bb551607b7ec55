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


# ---------------------------------------------------------------- claim 1, measured
# The path comparison the verdict rests on (``analysis.circuit``): interchange rates over
# informative sites, a seed-to-seed positive control and three negative controls.
CLAIM1_QUERIES = 600          # two-hop training queries sampled across all heads
BEFORE_MAX_HELDOUT = 0.2      # "before" must be memorized with held-out ID at most this
CONTROL_SEED = 1              # the positive control's training seed (same graph)
RANDOM_SEED = 12345           # the random-initialisation control's torch seed


def claim1_configs(preset_name: str = "cpu", arch: str | None = None) -> dict:
    """The runs claim 1 needs for one architecture: the subject run, the same config under
    another training seed (positive control) and the lookup control (the same graph with
    the training two-hop tails permuted: it can memorize them, but no bridge composes them)."""
    from ..core.config import SUBJECT, preset
    cfg = preset(preset_name, arch or SUBJECT)
    return {"subject": cfg, "seed_control": cfg.replace(**{"train.init_seed": CONTROL_SEED}),
            "lookup": cfg.replace(**{"data.shuffle_inferred": True})}


def _acc_at(run, step) -> dict:
    a = checkpoint_accuracy(run).loc[step]
    return {"step": int(step), "train_inferred": round(float(a["train_inferred"]), 4),
            "test_inferred_iid": round(float(a["test_inferred_iid"]), 4)}


def _random_model(cfg, vocab: int):
    import torch

    from ..core.arch import build_model
    torch.manual_seed(RANDOM_SEED)
    return build_model(cfg, vocab).eval()


def claim1_evidence(runs: dict, n_queries: int = CLAIM1_QUERIES, seed: int = 0,
                    n_boot: int = 1000) -> dict:
    """Claim 1's evidence for one architecture from the runs of ``claim1_configs`` (already
    trained): checkpoints, distances with intervals, controls, bridge tests, the outcome
    of ``analysis.circuit.path_rule`` and why. Missing preconditions make the outcome
    "not measured" with the reason, never a guess."""
    from ..analysis import circuit as C
    subject, control, lookup = runs["subject"], runs["seed_control"], runs["lookup"]
    ds = subject.dataset
    before, after = non_grokked_checkpoint(subject), grokked_checkpoint(subject)
    after2 = grokked_checkpoint(control)
    ev = {"arch": subject.config.model.arch, "runs": [r.id for r in runs.values()],
          "before": _acc_at(subject, before) if before is not None else None,
          "after": _acc_at(subject, after) if after is not None else None,
          "seed_control": _acc_at(control, after2) if after2 is not None else None,
          "lookup": _acc_at(lookup, lookup.checkpoints[-1])}
    missing = []
    if before is None or after is None:
        missing.append("the subject run has no memorized-not-grokked or no grokked checkpoint")
    elif ev["before"]["test_inferred_iid"] > BEFORE_MAX_HELDOUT:
        missing.append(f"held-out ID at 'before' is {ev['before']['test_inferred_iid']:.2f} "
                       f"> {BEFORE_MAX_HELDOUT}: it had already half generalized")
    if after2 is None:
        missing.append("the seed control did not grok, so there is no scale for 'same'")
    if missing:
        return {**ev, "outcome": C.UNDETERMINED, "measured": False, "reason": "; ".join(missing)}
    pool = C.trained_twohop(ds)
    q = C.sample_queries(ds.probes["train_inferred"], n_queries, seed)
    kept, cfs = C.pool_counterfactuals(ds, q, pool, seed)
    models = {"before": subject.load_model(before), "after": subject.load_model(after),
              "seed_control": control.load_model(after2),
              "lookup": lookup.load_model(lookup.checkpoints[-1]),
              "random": _random_model(subject.config, len(ds.vocab))}
    prof = {k: C.profile(m, ds, kept, cfs) for k, m in models.items()}
    mask = C.construction_mask(prof["random"])
    prof["permuted"] = C.permuted(prof["after"], seed, mask)
    d = C.bootstrap(prof["before"], prof["after"], seed, n_boot, mask)
    scale = C.bootstrap(prof["after"], prof["seed_control"], seed, n_boot, mask)
    negs = {k: C.bootstrap(prof["after"], prof[k], seed, n_boot, mask)
            for k in ("random", "lookup", "permuted")}
    outcome, reason = C.path_rule(d, scale, negs)
    atoms = {k: v[~ds.atomic_ood] for k, v in ds.atomic.items()}
    mid = C.middle_stage(models["after"].stage_names)
    bridge = {k: C.bridge_interchange(models[k], ds, kept, atoms, seed).assign(model=k)
              for k in ("before", "after", "seed_control", "lookup", "random")}
    lens = {k: C.bridge_lens(models[k], ds, kept).assign(model=k) for k in ("before", "after")}

    def at_mid(table, col):
        return round(float(table.loc[table["stage"] == mid, col].iloc[0]), 4)
    return {**ev, "measured": True, "outcome": outcome, "reason": reason,
            "queries": int(len(kept["h"])), "queries_sampled": int(len(q["h"])),
            "cells_informative": d["cells"], "cells_total": len(prof["after"].cells),
            "d_before_after": d, "seed_scale": scale, "negatives": negs,
            "middle_stage": mid,
            "interchange_at_middle": {k: at_mid(v, "rate") for k, v in bridge.items()},
            "bridge_top1_at_middle": {k: at_mid(v, "bridge_top1") for k, v in lens.items()},
            "heldout_split": heldout_split(models, ds, pool, seed, n_boot),
            "informative_sites": [list(map(str, c)) for c, m in zip(prof["after"].cells, mask)
                                  if m],
            "tables": {"rates": pd.concat([p.rates().assign(model=k) for k, p in prof.items()],
                                          ignore_index=True),
                       "interchange": pd.concat(bridge.values(), ignore_index=True),
                       "lens": pd.concat(lens.values(), ignore_index=True)}}


def heldout_split(models: dict, ds, pool: dict, seed: int = 0, n_boot: int = 1000) -> dict:
    """Held-out ID queries split by whether "before" already answers them: d(before, after)
    on each part (counterfactuals still drawn from the training facts)."""
    from ..analysis import circuit as C
    q = C.sample_queries(ds.probes["test_inferred_iid"], None, seed)
    kept, cfs = C.pool_counterfactuals(ds, q, pool, seed)
    before = C.profile(models["before"], ds, kept, cfs)
    after = C.profile(models["after"], ds, kept, cfs)
    mask = C.construction_mask(C.profile(models["random"], ds, kept, cfs))
    out = {}
    for name, rows in (("answered_before", before.clean_correct),
                       ("only_after", ~before.clean_correct & after.clean_correct)):
        idx = np.flatnonzero(rows)
        sub = [C.Profile(p.cells, p.switch[idx], p.inert, p.whole, p.clean_correct[idx])
               for p in (before, after)]
        out[name] = (C.bootstrap(*sub, seed, n_boot, mask) if len(idx) >= 2
                     else {"d": float("nan"), "queries": int(len(idx))})
    return out


def claim1_runs(preset_name: str = "cpu", arch: str | None = None, store=None,
                progress: bool = False) -> dict:
    """The runs of ``claim1_configs``, read from the store or trained (together)."""
    from ..core.store import train_many
    cfgs = claim1_configs(preset_name, arch)
    return dict(zip(cfgs, train_many(list(cfgs.values()), store=store, progress=progress)))


def claim1(preset_name: str = "cpu", arch: str | None = None, store=None,
           progress: bool = False, **kw) -> dict:
    """Claim 1's evidence at a preset for one architecture (the subject by default)."""
    return claim1_evidence(claim1_runs(preset_name, arch, store, progress), **kw)


def claim1_summary(ev: dict) -> dict:
    """The evidence without its tables, rounded: what ``grokbook claims --json`` prints."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k != "tables"}
        if isinstance(x, float):
            return None if np.isnan(x) else round(x, 4)
        return x
    return clean(ev)
