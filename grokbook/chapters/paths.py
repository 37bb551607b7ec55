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

from ..analysis.definitions import (GROKKED_AT, GROKKED_SPLIT, MEMORIZED_AT, MEMORIZED_SPLIT,
                                    checkpoint_accuracy, json_ready,
                                    non_grokked_checkpoint)
from ..analysis.lens import bridge_first_layer, bridge_rates, lens_summary, logit_lens
from ..analysis.patching import causal_tracing, heatmap_matrix, tracing_heatmap
from ..core.plan import Plan, Planned, plan_runs

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


# ---------------------------------------------------------------- claim 1, measured
# The path comparison the verdict rests on (``analysis.circuit``): interchange rates over
# informative sites, a seed-to-seed positive control and three negative controls.
CLAIM1_QUERIES = 600          # two-hop training queries sampled across all heads
BEFORE_MAX_HELDOUT = 0.2      # "before" must be memorized with held-out ID at most this
PLATEAU_AT = 0.9              # a run that never fits its training facts to MEMORIZED_AT
                              # (the dense transformer at cpu plateaus near 0.97): "before"
                              # is its first checkpoint with train_inferred at least this
CONTROL_SEEDS = (1, 2, 3)     # the positive control: the first of these training seeds
                              # (same graph; chapter 2's seed table) whose run groks; the
                              # rule is fixed in advance and looks at accuracy, not paths
RANDOM_SEED = 12345           # the random-initialisation control's torch seed

LATER_AT = 2.0                # "later": the same run at this multiple of its grokked step
# a seed control only needs its grokked checkpoint; the lookup only has to memorize
CONTROL_STOP = {"train.stop_at": GROKKED_AT, "train.stop_after_grokked": 0.0}
LOOKUP_STOP = {"train.stop_at": 0.0, "train.stop_after_grokked": 0.0,
               "train.stop_after_fitted": 2.0}


def claim_seeds(preset_name: str) -> list[int]:
    """The seeds the verdicts read (``subject.claim_seeds``: the first of the subject's
    seeds that passed the pass rule)."""
    from .subject import claim_seeds as seeds
    return seeds(preset_name)


def claim1_configs(preset_name: str = "cpu", arch: str | None = None,
                   seed: int | None = None) -> dict:
    """The runs claim 1 needs for one architecture on one seed's graph: the subject run
    (chapter 2's), the lookup control (the same graph with the training two-hop tails
    permuted: it can memorize them, but no bridge composes them) and the candidates for
    the positive control (the same config under another training seed),
    ``seed_control_<s>``, in the order they are tried; and ``later``, the subject's config
    with twice the budget, for the drift scale where the subject's run ends too soon."""
    from ..core.config import SUBJECT, preset
    cfg = preset(preset_name, arch or SUBJECT, **({} if seed is None else {"seed": seed}))
    out = {"subject": cfg, "lookup": cfg.replace(**{"data.shuffle_inferred": True,
                                                    **LOOKUP_STOP})}
    for s_ in CONTROL_SEEDS:
        out[f"seed_control_{s_}"] = cfg.replace(**{"train.init_seed": s_, **CONTROL_STOP})
    # the same run carried on past its budget to LATER_AT x its grokked step (the schedule
    # is constant after warmup, so it retraces the subject; claim1_evidence checks it)
    out["later"] = cfg.replace(**{"train.max_steps": int(LATER_AT * cfg.train.max_steps),
                                  "train.stop_after_grokked": LATER_AT})
    return out


def before_checkpoint(run):
    """(step, rule) of claim 1's "before": the non-grokked checkpoint
    (``definitions.non_grokked_checkpoint``); for a run that never reaches MEMORIZED_AT,
    its first checkpoint with train_inferred >= PLATEAU_AT not yet grokked, and the rule
    says so. (None, rule) when neither exists."""
    step = non_grokked_checkpoint(run)
    if step is not None:
        return step, f"first checkpoint with train_inferred >= {MEMORIZED_AT}, not grokked"
    a = checkpoint_accuracy(run)
    rule = (f"the run never reaches train_inferred {MEMORIZED_AT} (best "
            f"{a[MEMORIZED_SPLIT].max():.3f}): first checkpoint with train_inferred >= "
            f"{PLATEAU_AT}, not grokked")
    ok = a[(a[MEMORIZED_SPLIT] >= PLATEAU_AT) & (a[GROKKED_SPLIT] < GROKKED_AT)]
    if a[MEMORIZED_SPLIT].max() >= MEMORIZED_AT or not len(ok):
        return None, rule
    return int(ok.index[0]), rule


def after_checkpoint(run):
    """Claim 1's "after": the first grokked checkpoint (memorized, held-out ID >=
    GROKKED_AT: matched in held-out accuracy across runs); for a run that never reaches
    MEMORIZED_AT, the first with train_inferred >= PLATEAU_AT and held-out ID >= GROKKED_AT
    (the rule of ``before_checkpoint``). None when absent."""
    a = checkpoint_accuracy(run)
    fitted = MEMORIZED_AT if a[MEMORIZED_SPLIT].max() >= MEMORIZED_AT else PLATEAU_AT
    ok = a[(a[MEMORIZED_SPLIT] >= fitted) & (a[GROKKED_SPLIT] >= GROKKED_AT)]
    return int(ok.index[0]) if len(ok) else None


def later_checkpoint(run, after):
    """Claim 1's "later": the run's last checkpoint, when it lies at least ``LATER_AT``
    times the grokked step (held-out ID first >= GROKKED_AT) after the start; else None."""
    from ..analysis.definitions import grokked_step
    grok = grokked_step(run.accuracy())
    last = run.checkpoints[-1]
    if after is None or grok is None or last < LATER_AT * grok or last <= after:
        return None
    return int(last)


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
                    n_boot: int = 1000, others: dict | None = None) -> dict:
    """Claim 1's evidence for one architecture from the runs of ``claim1_configs`` (already
    trained): checkpoints, distances with intervals, controls, bridge tests, the outcome
    of ``analysis.circuit.path_rule`` and why. Missing preconditions make the outcome
    "not measured" with the reason, never a guess.

    ``others`` ({label: (run, step)}, e.g. chapter 7's shortcut runs on the same graph) are
    each compared with "after" by the same rule, seed scale and controls:
    ``ev["others"][label]`` holds the distance, the outcome and why."""
    from ..analysis import circuit as C
    subject, lookup = runs["subject"], runs.get("lookup")
    ds = subject.dataset
    before, before_rule = before_checkpoint(subject)
    after = after_checkpoint(subject)
    later, later_run = later_checkpoint(subject, after), subject
    cont = runs.get("later")
    if later is None and cont is not None:     # the same run carried on past its budget
        later, later_run = later_checkpoint(cont, after), cont
    tried = {k: r for k, r in runs.items() if k.startswith("seed_control_")}
    control, after2 = next(((r, after_checkpoint(r)) for r in tried.values()
                            if after_checkpoint(r) is not None), (None, None))
    ev = {"arch": subject.config.model.arch, "runs": [r.id for r in runs.values()],
          "before_rule": before_rule,
          "seed_controls_tried": [{"init_seed": r.config.train.init_seed, "run": r.id,
                                   "grokked": after_checkpoint(r) is not None,
                                   "final_test_inferred_iid": round(float(
                                       r.accuracy()[GROKKED_SPLIT].iloc[-1]), 4)}
                                  for r in tried.values()],
          "seed": subject.config.seed,
          "before": _acc_at(subject, before) if before is not None else None,
          "after": _acc_at(subject, after) if after is not None else None,
          "later": _acc_at(later_run, later) if later is not None else None,
          "seed_control": _acc_at(control, after2) if after2 is not None else None,
          "lookup": _acc_at(lookup, lookup.checkpoints[-1]) if lookup is not None else None}
    missing = []
    if before is None or after is None:
        missing.append("the subject run has no memorized-not-grokked or no grokked checkpoint")
    elif ev["before"]["test_inferred_iid"] > BEFORE_MAX_HELDOUT:
        missing.append(f"held-out ID at 'before' is {ev['before']['test_inferred_iid']:.2f} "
                       f"> {BEFORE_MAX_HELDOUT}: it had already half generalized")
    if after is not None and later is None:
        missing.append(f"the subject run has no checkpoint at {LATER_AT:g}x its grokked step "
                       f"(no scale for its own drift)")
    elif later_run is not subject and not _retraces(later_run, subject, after):
        missing.append(f"the run carried on to {LATER_AT:g}x its grokked step does not retrace "
                       f"the subject run at step {after} (no scale for its own drift)")
    if not tried:
        missing.append("no seed control was trained (none is, unless the subject grokked)")
    elif after2 is None:
        missing.append(f"no seed control grokked ({len(tried)} training seeds tried), so "
                       f"there is no scale for 'same'")
    if missing:
        why = "; ".join(missing)
        return {**ev, "outcome": C.UNDETERMINED, "measured": False, "reason": why,
                "others": {k: {"outcome": C.UNDETERMINED, "reason": why}
                           for k in (others or {})}}
    pool = C.trained_twohop(ds)
    q = C.sample_queries(ds.probes["train_inferred"], n_queries, seed)
    kept, cfs = C.pool_counterfactuals(ds, q, pool, seed)
    models = {"before": subject.load_model(before), "after": subject.load_model(after),
              "later": later_run.load_model(later),
              "seed_control": control.load_model(after2),
              "seed_control_before": control.load_model(before_checkpoint(control)[0]
                                                        or after2),
              "random": _random_model(subject.config, len(ds.vocab))}
    if lookup is not None:        # a negative control trained on one seed of the book's
        models["lookup"] = lookup.load_model(lookup.checkpoints[-1])
    prof = {k: C.profile(m, ds, kept, cfs) for k, m in models.items()}
    mask = C.construction_mask(prof["random"])
    prof["permuted"] = C.permuted(prof["after"], seed, mask)
    d = C.bootstrap(prof["before"], prof["after"], seed, n_boot, mask)
    seed_scale = C.bootstrap(prof["after"], prof["seed_control"], seed, n_boot, mask)
    drift = C.bootstrap(prof["after"], prof["later"], seed, n_boot, mask)
    # "same" is read against the larger of the two scales: another seed at matched held-out
    # accuracy, and the run's own drift between "after" and "later"
    scale = max((seed_scale, drift), key=lambda b: b["p95"])
    negs = {k: C.bootstrap(prof["after"], prof[k], seed, n_boot, mask)
            for k in ("random", "lookup", "permuted") if k in prof}
    name = "own-drift" if scale is drift else "seed-to-seed"
    outcome, reason = C.path_rule(d, scale, negs, scale_name=name)
    compared = {}
    for label, (run, step) in (others or {}).items():
        if step is None or not same_graph(run.dataset, ds):
            compared[label] = {"outcome": C.UNDETERMINED, "reason": (
                "no grokked checkpoint" if step is None else "another knowledge graph")}
            continue
        other = C.profile(run.load_model(step), ds, kept, cfs)
        dist = C.bootstrap(prof["after"], other, seed, n_boot, mask)
        compared[label] = {"run": run.id, "step": int(step), **dict(zip(
            ("outcome", "reason"), C.path_rule(dist, scale, negs, f"d(after, {label})", name))),
            "d": dist}
    # context, not part of the rule: how far apart two seeds are at the "before" stage
    before_scale = C.bootstrap(prof["before"], prof["seed_control_before"], seed, n_boot, mask)
    atoms = {k: v[~ds.atomic_ood] for k, v in ds.atomic.items()}
    mid = C.middle_stage(models["after"].stage_names)
    bridge = {k: C.bridge_interchange(models[k], ds, kept, atoms, seed).assign(model=k)
              for k in ("before", "after", "seed_control", "lookup", "random") if k in models}
    lens = {k: C.bridge_lens(models[k], ds, kept).assign(model=k)
            for k in ("before", "after", "later")}

    ev["seed_control"] = {**ev["seed_control"], "init_seed": control.config.train.init_seed}

    def at_mid(table, col):
        return round(float(table.loc[table["stage"] == mid, col].iloc[0]), 4)
    return {**ev, "measured": True, "outcome": outcome, "reason": reason,
            "queries": int(len(kept["h"])), "queries_sampled": int(len(q["h"])),
            "cells_informative": d["cells"], "cells_total": len(prof["after"].cells),
            "d_before_after": d, "seed_scale": seed_scale, "drift": drift,
            "scale": {"p95": scale["p95"], "from": "drift" if scale is drift else "seed"},
            "negatives": negs,
            "seed_scale_before": before_scale, "others": compared,
            "middle_stage": mid,
            "interchange_at_middle": {k: at_mid(v, "rate") for k, v in bridge.items()},
            "bridge_top1_at_middle": {k: at_mid(v, "bridge_top1") for k, v in lens.items()},
            "lens_before_after": lens_gap(lens["before"], lens["after"]),
            "heldout_split": heldout_split(models, ds, pool, seed, n_boot),
            "informative_sites": [list(map(str, c)) for c, m in zip(prof["after"].cells, mask)
                                  if m],
            "tables": {"rates": pd.concat([p.rates().assign(model=k) for k, p in prof.items()],
                                          ignore_index=True),
                       "interchange": pd.concat(bridge.values(), ignore_index=True),
                       "lens": pd.concat(lens.values(), ignore_index=True)}}


def same_graph(a, b) -> bool:
    """Whether two datasets hold the same atomic facts (and OOD flags): models trained on
    them answer the same two-hop queries, whatever their two-hop training sets."""
    return (a.atomic.keys() == b.atomic.keys()
            and all(np.array_equal(a.atomic[k], b.atomic[k]) for k in a.atomic)
            and np.array_equal(a.atomic_ood, b.atomic_ood))


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


def _retraces(long, run, step) -> bool:
    """Whether ``long`` holds ``run``'s accuracies at ``step`` (a checkpoint of both)."""
    a, b = checkpoint_accuracy(long), checkpoint_accuracy(run)
    if step not in a.index or step not in b.index:
        return False
    return bool(np.allclose(a.loc[step].to_numpy(float), b.loc[step].to_numpy(float),
                            atol=1e-6, equal_nan=True))


def _grokked(run) -> bool:
    return run is not None and after_checkpoint(run) is not None


def lens_gap(before: pd.DataFrame, after: pd.DataFrame) -> dict:
    """The study's own instrument on the same two checkpoints: the logit lens's bridge
    top-1 rate at the r1 position per stage, the largest gap between them and where."""
    gap = (after.set_index("stage")["bridge_top1"] - before.set_index("stage")["bridge_top1"])
    stage = gap.abs().idxmax()
    return {"max_gap": round(float(gap.abs().max()), 4), "at": str(stage),
            "before": round(float(before.set_index("stage")["bridge_top1"][stage]), 4),
            "after": round(float(after.set_index("stage")["bridge_top1"][stage]), 4)}


def claim1_plan(preset_name: str = "cpu", arch: str | None = None,
                seed: int | None = None, lookup: bool = True) -> Plan:
    """``claim1_configs`` on one seed's graph as chapter 4's plan: the subject; each seed
    control only if the subject grokked and no earlier control did (in their order); the
    lookup control (``lookup``) only once a seed control grokked (without a grokked
    subject and a grokked seed control claim 1 is not measured whatever the other controls
    do, so none is trained for it)."""
    from ..core.config import SUBJECT
    cfgs = claim1_configs(preset_name, arch, seed)
    pre = f"04/{arch or SUBJECT}/seed {cfgs['subject'].seed}/"
    subject = pre + "subject"
    controls = [pre + k for k in cfgs if k.startswith("seed_control_")]
    p = Plan([Planned(subject, "04", "subject", cfgs["subject"])])
    p.add(Planned(pre + "later", "04", "drift", cfgs["later"], after=(subject,),
                  when=lambda runs: _grokked(runs[subject]) and later_checkpoint(
                      runs[subject], after_checkpoint(runs[subject])) is None,
                  note=f"trained only if the subject grokked and its run ended before "
                       f"{LATER_AT:g}x its grokked step"))
    for i, name in enumerate(controls):
        earlier = controls[:i]
        p.add(Planned(name, "04", "seed control", cfgs[name[len(pre):]],
                      after=(subject, *earlier),
                      when=lambda runs, e=earlier: _grokked(runs[subject]) and not any(
                          _grokked(runs[c]) for c in e),
                      note="trained only if the subject grokked and no earlier seed "
                           "control did"))
    if lookup:
        p.add(Planned(pre + "lookup", "04", "lookup control", cfgs["lookup"],
                      after=(subject, *controls),
                      when=lambda runs: any(_grokked(runs[c]) for c in controls),
                      note="trained only once a seed control grokked"))
    return p


def plan(preset_name: str = "cpu") -> Plan:
    """Chapter 4's runs: claim 1 for the subject on each claim seed (the lookup control on
    the first only), and for the dense transformer on the first seed beside it."""
    from ..core.config import SUBJECT
    seeds = claim_seeds(preset_name)
    p = Plan()
    for i, s_ in enumerate(seeds):
        p.extend(claim1_plan(preset_name, SUBJECT, s_, lookup=i == 0))
    return p.extend(claim1_plan(preset_name, "dense", seeds[0]))


def claim1_runs(preset_name: str = "cpu", arch: str | None = None, store=None,
                progress: bool = False, seed: int | None = None) -> dict:
    """The runs of ``claim1_plan`` that were trained ({"subject", "later",
    "seed_control_<s>" ..., "lookup"}), read from the store or trained now."""
    from ..core.config import SUBJECT
    first = seed is None or seed == claim_seeds(preset_name)[0]
    lookup = first or (arch or SUBJECT) != SUBJECT
    p = claim1_plan(preset_name, arch, seed, lookup=lookup)
    runs = plan_runs(p, store=store)
    return {name.rsplit("/", 1)[1]: run for name, run in runs.items() if run is not None}


def claim1(preset_name: str = "cpu", arch: str | None = None, store=None,
           progress: bool = False, seed: int | None = None, **kw) -> dict:
    """Claim 1's evidence at a preset for one architecture (the subject by default) on one
    seed's graph (the preset's own by default)."""
    return claim1_evidence(claim1_runs(preset_name, arch, store, progress, seed), **kw)


def claim1_seeds(preset_name: str = "cpu", store=None, **kw) -> list[dict]:
    """Claim 1's evidence on each claim seed of the subject."""
    return [claim1(preset_name, store=store, seed=s_, **kw) for s_ in claim_seeds(preset_name)]


def claim1_over_seeds(evs: list[dict]) -> tuple:
    """(verdict, why, numbers) of claim 1 over seeds: replicates if more than half of the
    measured seeds are "same" and none "different"; does not replicate if more than half
    are "different" and none "same"; partly if both occur; not measured otherwise (too
    few seeds measured, or mostly undetermined)."""
    from ..analysis.circuit import DIFFERENT, SAME
    from ..analysis.definitions import NOT_MEASURED, NOT_REPLICATED, PARTLY, REPLICATES
    from ..analysis.seeds import not_measured
    measured = [e for e in evs if e["measured"]]
    same = [e["seed"] for e in measured if e["outcome"] == SAME]
    diff = [e["seed"] for e in measured if e["outcome"] == DIFFERENT]
    n = len(measured)
    numbers = {"seeds": [e["seed"] for e in evs], "measured": n, "same": same,
               "different": diff}
    said = (f"{len(same)} of {n} measured seeds same, {len(diff)} different "
            f"(seeds {', '.join(map(str, numbers['seeds']))})")
    why = not_measured(n)
    if why:
        reasons = "; ".join(f"seed {e['seed']}: {e['reason']}" for e in evs
                            if not e["measured"])
        return NOT_MEASURED, why + (f" ({reasons})" if reasons else ""), numbers
    if 2 * len(same) > n and not diff:
        return REPLICATES, said, numbers
    if 2 * len(diff) > n and not same:
        return NOT_REPLICATED, said, numbers
    if same and diff:
        return PARTLY, said, numbers
    return NOT_MEASURED, said + ": mostly undetermined", numbers


def claim1_summary(ev: dict) -> dict:
    """The evidence without its tables, rounded: what ``grokbook claims --json`` prints."""
    return json_ready(ev)


# ---------------------------------------------------------------- claim 1: tables, charts, prose
def describe_claim1(c: dict) -> str:
    """Claim 1's evidence on one seed in one paragraph, computed."""
    if not c["measured"]:
        return f"not measured: {c['reason']}"
    d, s, dr = c["d_before_after"], c["seed_scale"], c["drift"]
    negs = ", ".join(f"{k} {v['d']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]"
                     for k, v in c["negatives"].items())
    lens = c["lens_before_after"]
    return (f"{c['arch']}, seed {c['seed']}: steps {c['before']['step']} (held-out ID "
            f"{c['before']['test_inferred_iid']:.2f}) vs {c['after']['step']} "
            f"({c['after']['test_inferred_iid']:.2f}): d(before, after) = {d['d']:.3f} "
            f"[{d['lo']:.3f}, {d['hi']:.3f}] over {d['cells']} informative sites and "
            f"{d['queries']} queries; seed-to-seed d = {s['d']:.3f} (95th percentile "
            f"{s['p95']:.3f}), drift to step {c['later']['step']} d = {dr['d']:.3f} (95th "
            f"percentile {dr['p95']:.3f}); the scale of 'same' is the larger, "
            f"{c['scale']['p95']:.3f} ({c['scale']['from']}); d(after, negative control): "
            f"{negs}. Outcome **{c['outcome']}**: {c['reason']}. The logit lens's bridge "
            f"top-1 rate at r1 moves by at most {lens['max_gap']:.2f} between the two "
            f"checkpoints ({lens['before']:.2f} -> {lens['after']:.2f} at {lens['at']}).")


CHECKPOINT_ROLES = ("before", "after", "later", "seed_control", "lookup")


def checkpoint_table(c: dict) -> pd.DataFrame:
    """The evidence's checkpoints (before, after, later, and the controls it has), one row
    each: step, train_inferred and held-out ID accuracy (and the seed control's training
    seed)."""
    return pd.DataFrame([{"checkpoint": k, **c[k]} for k in CHECKPOINT_ROLES if c.get(k)])


def bridge_tables(c: dict) -> tuple:
    """(the logit lens's bridge top-1 rate per stage (rows, in the model's order) and model
    (columns); the atomic-donor interchange rate per model at the middle stage, fixed in
    advance) of measured evidence."""
    lens = c["tables"]["lens"]
    per_stage = lens.pivot(index="stage", columns="model", values="bridge_top1")
    per_stage = per_stage.reindex(list(dict.fromkeys(lens["stage"]))).round(3)
    middle = pd.DataFrame({f"interchange rate at {c['middle_stage']}":
                           c["interchange_at_middle"]})
    return per_stage, middle


def distance_table(c: dict) -> pd.DataFrame:
    """Every distance of the evidence with its interval, one row each."""
    rows = [("before vs after", c["d_before_after"]),
            ("after vs seed control (one scale of 'same')", c["seed_scale"]),
            ("after vs later, the same run (its drift, the other scale)", c["drift"]),
            ("before vs seed control's before (context)", c["seed_scale_before"])]
    rows += [(f"after vs {k} (negative control)", v) for k, v in c["negatives"].items()]
    for k, v in c.get("heldout_split", {}).items():
        rows.append((f"before vs after, held-out {k.replace('_', ' ')}", v))
    return pd.DataFrame([{"comparison": name, "d": b.get("d"), "low": b.get("lo"),
                          "high": b.get("hi"), "queries": b.get("queries")}
                         for name, b in rows]).round(4)


def distance_chart(c: dict):
    """Distances with their intervals; the rule = seed-to-seed 95th percentile."""
    import altair as alt
    t = distance_table(c).dropna(subset=["d"])
    order = list(t["comparison"])
    base = alt.Chart(t).encode(y=alt.Y("comparison:N", sort=order, title=None))
    bars = base.mark_errorbar().encode(x=alt.X("low:Q", title="distance d (mean gap of "
                                                "interchange rates)"), x2="high:Q")
    dots = base.mark_point(filled=True, size=60).encode(
        x="d:Q", tooltip=["comparison", "d", "low", "high", "queries"])
    rule = alt.Chart(pd.DataFrame({"p95": [c["scale"]["p95"]]})).mark_rule(
        color="black", strokeDash=[4, 3]).encode(x="p95:Q")
    return (bars + dots + rule).properties(width=420, height=28 * len(t),
                                           title="claim 1: distances (dashed: the scale of 'same')")


def rates_chart(c: dict, models=("before", "after", "seed_control", "lookup", "random")):
    """Interchange rate at every site, one panel row per model; fixed cells hatched out."""
    import altair as alt
    r = c["tables"]["rates"]
    mask = {tuple(s) for s in c["informative_sites"]}
    r = r[r["model"].isin(models)].assign(
        site=lambda d: [("informative" if (a, b, str(p)) in mask else "fixed")
                        for a, b, p in zip(d["swap"], d["stage"], d["position"])],
        stage=lambda d: d["stage"].astype(str))
    order = list(dict.fromkeys(r["stage"]))
    return alt.Chart(r).mark_rect().encode(
        x=alt.X("position:O"), y=alt.Y("stage:N", sort=order[::-1]),
        color=alt.Color("rate:Q", scale=alt.Scale(domain=[0, 1], scheme="orangered"),
                        title="interchange rate"),
        opacity=alt.condition(alt.datum.site == "informative", alt.value(1), alt.value(0.25)),
        column=alt.Column("swap:N", sort=list(("h", "r1", "r2")), title="swapped token"),
        row=alt.Row("model:N", sort=list(models)),
        tooltip=["model", "swap", "stage", "position", "site",
                 alt.Tooltip("rate:Q", format=".3f")],
    ).properties(width=90, height=110)


def interchange_chart(c: dict):
    """The atomic-donor interchange per stage and model, the middle stage marked."""
    import altair as alt
    t = c["tables"]["interchange"].assign(stage=lambda d: d["stage"].astype(str))
    order = list(dict.fromkeys(t.sort_values("layer")["stage"]))
    line = alt.Chart(t).mark_line(point=True).encode(
        x=alt.X("stage:N", sort=order), y=alt.Y("rate:Q", scale=alt.Scale(domain=[0, 1]),
                                                title="output = tail(b', r2)"),
        color="model:N", tooltip=["model", "stage", alt.Tooltip("rate:Q", format=".3f"), "n"])
    mid = alt.Chart(pd.DataFrame({"stage": [c["middle_stage"]]})).mark_rule(
        color="black", strokeDash=[4, 3]).encode(x=alt.X("stage:N", sort=order))
    return (line + mid).properties(width=360, height=200, title="donor bridge copied in at "
                                   "the r1 position (dashed: stage fixed in advance)")


def seed_summary(evs: list[dict]) -> pd.DataFrame:
    """One row per claim seed: the checkpoints, d(before, after) with its interval, the two
    scales of "same" and the larger, the outcome, and the logit lens's largest gap."""
    rows = []
    for e in evs:
        row = {"seed": e["seed"], "outcome": e["outcome"] if e["measured"] else "not measured"}
        if e["measured"]:
            d = e["d_before_after"]
            row.update(before=e["before"]["step"],
                       heldout_before=e["before"]["test_inferred_iid"],
                       after=e["after"]["step"], later=e["later"]["step"], d=d["d"],
                       d_low=d["lo"], d_high=d["hi"], seed_p95=e["seed_scale"]["p95"],
                       drift_p95=e["drift"]["p95"], scale=e["scale"]["p95"],
                       lens_max_gap=e["lens_before_after"]["max_gap"])
        else:
            row["why"] = e["reason"]
        rows.append(row)
    return pd.DataFrame(rows)
