"""Chapter 6: fine-tuning a grokked model on new facts (the transfer sets are built by
``core.newknowledge``): which checkpoints start, how long, and what the probes show.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.definitions import (GROKKED_AT, GROKKED_SPLIT, MEMORIZED_AT, MEMORIZED_SPLIT,
                                    R1_POSITION, checkpoint_accuracy, grokked_checkpoint,
                                    non_grokked_checkpoint, wilson)
from ..analysis.circuit import middle_stage
from ..analysis.lens import site_lens, strict_check
from ..core.config import ConfigError, transfer_sizes
from ..core.newknowledge import (CONTROL_TEST, CONTROL_TRAINED, CONTROL_UNSEEN, HOP2_CONTROL,
                                 PARENT_PROBES, PROBE_KINDS)
from ..core.tables import n_rows
from ..core.plan import Plan, Planned, plan_runs
from . import settings
from .study import TRANSFER_NUMBERS


# ---------------------------------------------------------------- fine-tuning configs
def finetune_config(parent_run, step: int, lr: float | None = None, max_steps: int = 1000,
                    finetune: str = "new_knowledge", **overrides):
    """Config that fine-tunes ``parent_run`` from its checkpoint ``step`` on a transfer set.

    Same data, model and seed as the parent; own learning rate (default: half the parent's,
    as the study's 2e-5 against 4e-5), a short warmup, dense evaluation and ten checkpoints;
    it runs its ``max_steps`` whatever the parent's stop rules (a grokked start would
    otherwise "have grokked" at its first evaluation and stop).
    ``overrides`` are dotted fields (``**{"transfer.new_facts": 600}``).
    """
    if step not in parent_run.checkpoints:
        raise ConfigError(f"parent: step {step} is not a stored checkpoint of run "
                          f"{parent_run.id}; stored: {parent_run.checkpoints}")
    if parent_run.config.finetune:
        raise ConfigError(f"parent: run {parent_run.id} is itself fine-tuned; start from a run "
                          "trained on its own graph")
    t = parent_run.config.train
    settings = {
        "parent": f"{parent_run.id}@{step}", "finetune": finetune,
        "train.lr": lr if lr is not None else t.lr / 2, "train.max_steps": max_steps,
        "train.warmup_steps": min(t.warmup_steps, max_steps // 10),
        "train.eval_every": max(1, max_steps // 20), "train.eval_dense_until": max_steps,
        "train.checkpoint_every": max(1, max_steps // 10), "train.device": "auto",
        # the parent's stop rules would end a fine-tune of a grokked start at once
        "train.stop_at": 0.0, "train.stop_after_grokked": 0.0, "train.stop_after_fitted": 0.0}
    settings.update(overrides)
    return parent_run.config.replace(**settings)


def chapter_finetune_settings(preset: str) -> dict:
    """``finetune_config`` keyword arguments the chapter uses at ``preset``."""
    return dict(settings.of(preset)["finetune"])


NEW_LEARNED = 0.9   # the new atomic facts count as learned at this best accuracy


# the floor model trains on the subject's graph without two-hop facts for this share of the
# subject's steps (at cpu 2,000: its 1,000 atomic facts are memorized long before)
FLOOR_SHARE = 0.2
# the chapter's starting points, in the order of its tables
ROLES = ("grokked", "memorized", "floor", "hop2_control", "replay", "dense_grokked")
CONTEXT = ("memorized", "replay", "dense_grokked")   # on the first claim seed only
REPLAY_GAIN = 2          # the replay variant replays this many times the chapter's old items


def floor_config(parent_cfg):
    """The floor starting point: the parent's config trained on atomic facts only (phi 0),
    for ``FLOOR_SHARE`` of its steps; a model that never saw a composition."""
    n = max(1, int(parent_cfg.train.max_steps * FLOOR_SHARE))
    t = parent_cfg.train
    return parent_cfg.replace(**{"data.phi": 0.0, "train.max_steps": n,
                                 "train.eval_dense_until": n, "train.stop_at": 0.0,
                                 "train.warmup_steps": min(t.warmup_steps, n // 10),
                                 "train.checkpoint_every": min(t.checkpoint_every, n)})


def chapter_configs(parent_run, floor_run, preset: str, dense_run=None) -> dict:
    """{role: fine-tuning Config} of the chapter, all on the same new facts and schedule:
    ``grokked`` and ``memorized`` (``pick_checkpoints``), ``floor`` (the last checkpoint of
    ``floor_run``, fine-tuned on the parent's transfer set), ``hop2_control`` (the grokked
    checkpoint on the positive control's set: one composition with the new fact as hop 2
    trained for half the new facts) and, when ``dense_run`` (the dense transformer on the
    same graph and recipe) has a grokked checkpoint, ``dense_grokked``."""
    settings = chapter_finetune_settings(preset)
    picks = pick_checkpoints(parent_run).set_index("role")["step"]
    out = {role: finetune_config(parent_run, int(step), **settings)
           for role, step in picks.items()}
    out["floor"] = finetune_config(floor_run, floor_run.checkpoints[-1], **settings,
                                   **{"data.phi": parent_run.config.data.phi})
    out["hop2_control"] = finetune_config(parent_run, int(picks["grokked"]),
                                          finetune=HOP2_CONTROL, **settings)
    more = REPLAY_GAIN * transfer_sizes(out["grokked"])["replay"]     # forgetting, reduced?
    out["replay"] = out["grokked"].replace(**{"transfer.replay": more})
    step = grokked_checkpoint(dense_run) if dense_run is not None else None
    if step is not None:
        out["dense_grokked"] = finetune_config(dense_run, step, **settings)
    return {r: out[r] for r in ROLES if r in out}


def _names(seed: int) -> tuple:
    pre = f"06/seed {seed}/"
    return pre + "parent", pre + "floor", pre + "dense", pre + "finetune/"


def plan(preset_name: str) -> Plan:
    """Chapter 6's runs on every claim seed: the parent (the subject's chapter-2 run), the
    floor model, then the grokked, floor and positive-control starts fine-tuned once those
    are trained; on the first seed also the memorized start, the replay variant and the
    dense transformer's grokked start (only when it grokked) beside them."""
    from ..core.config import preset
    from .paths import claim_seeds
    p = Plan()
    for i, seed in enumerate(claim_seeds(preset_name)):
        base = preset(preset_name, seed=seed)
        parent, floor, dense, tune = _names(seed)
        p.add(Planned(parent, "06", "parent", base))
        p.add(Planned(floor, "06", "floor", floor_config(base)))
        if i == 0:
            p.add(Planned(dense, "06", "contrast", preset(preset_name, "dense", seed=seed)))
        starts = (parent, floor, dense) if i == 0 else (parent, floor)
        like = finetune_config_like(base, preset_name)
        for role in ROLES if i == 0 else [r for r in ROLES if r not in CONTEXT]:
            p.add(Planned(tune + role, "06", "fine-tune", after=starts,
                          build=lambda runs, r=role, st=starts: chapter_configs(
                              runs[st[0]], runs[st[1]], preset_name,
                              runs[st[2]] if len(st) > 2 else None).get(r),
                          note=("fine-tunes the dense run's grokked checkpoint; only when "
                                "it grokked" if role == "dense_grokked" else
                                f"fine-tunes the {role} start"), like=like,
                          labels={"seed": seed, "role": role}))
    return p


def finetune_config_like(cfg, preset_name: str):
    """A config of a chapter fine-tune's shape and length (to predict its cost before its
    parent is trained)."""
    s = chapter_finetune_settings(preset_name)
    steps = s.pop("max_steps", 1000)
    s.pop("lr", None)
    return cfg.replace(**{"train.max_steps": steps, "train.eval_every": max(1, steps // 20),
                          "train.eval_dense_until": steps, "finetune": "new_knowledge",
                          "train.stop_at": 0.0, "train.stop_after_grokked": 0.0, **s})


def chapter_runs(preset_name: str, store=None) -> dict:
    """{seed: {"parent", "floor" (and "dense" on the first seed): Run, "finetunes": {role:
    Run}}} from the store (trained if missing); a fine-tune that was not needed is absent."""
    from .paths import claim_seeds
    runs = plan_runs(plan(preset_name), store=store)
    out = {}
    for seed in claim_seeds(preset_name):
        parent, floor, dense, tune = _names(seed)
        out[seed] = {"parent": runs[parent], "floor": runs[floor],
                     "finetunes": {n[len(tune):]: r for n, r in runs.items()
                                   if n.startswith(tune) and r is not None}}
        if dense in runs:
            out[seed]["dense"] = runs[dense]
    return out


def describe_beside(dense_run) -> str:
    """Plain words: whether the dense transformer beside the subject has a grokked
    checkpoint to fine-tune (``chapter_configs``' ``dense_grokked``)."""
    held = checkpoint_accuracy(dense_run)[GROKKED_SPLIT]
    step = grokked_checkpoint(dense_run)
    head = (f"The dense transformer beside the subject (same graph and recipe, "
            f"{dense_run.steps:,} steps)")
    if step is None:
        return (f"{head} never reached held-out ID {GROKKED_AT} (best {held.max():.2f}, at "
                f"step {int(held.idxmax()):,}): it has no grokked checkpoint to fine-tune, so "
                f"it does not appear below.")
    return (f"{head} grokked (held-out ID {held.loc[step]:.2f} at step {step:,}); that "
            f"checkpoint is fine-tuned alike (`dense_grokked`), as context: the verdict "
            f"reads the subject.")


# ---------------------------------------------------------------- which checkpoints
def pick_checkpoints(run) -> pd.DataFrame:
    """The two starting points of the chapter (``analysis.definitions``' checkpoint rules).

    ``grokked``: the latest memorized-and-grokked checkpoint. ``memorized``: the earliest
    memorized-not-grokked one. When a rule finds none, a stand-in is named (``met`` False):
    the last checkpoint for grokked, the checkpoint with the largest gap train_inferred -
    test_inferred_iid for memorized.
    """
    ck = checkpoint_accuracy(run)[[MEMORIZED_SPLIT, GROKKED_SPLIT]]
    grok, mem = grokked_checkpoint(run), non_grokked_checkpoint(run)
    rows = [("grokked", grok, True) if grok is not None else ("grokked", int(ck.index[-1]), False)]
    if mem is not None:
        rows.append(("memorized", mem, True))
    else:
        gap = (ck[MEMORIZED_SPLIT] - ck[GROKKED_SPLIT]).drop(rows[0][1], errors="ignore")
        if len(gap):
            rows.append(("memorized", int(gap.idxmax()), False))
    out = pd.DataFrame(rows, columns=["role", "step", "met"])
    out["train_inferred"] = ck.loc[out.step, MEMORIZED_SPLIT].to_numpy()
    out["test_inferred_iid"] = ck.loc[out.step, GROKKED_SPLIT].to_numpy()
    return out


def describe_checkpoints(picks: pd.DataFrame) -> str:
    """Plain words for ``pick_checkpoints``: which steps, and whether each criterion held."""
    words = []
    for r in picks.itertuples():
        crit = (f"{GROKKED_SPLIT} >= {GROKKED_AT}" if r.role == "grokked" else
                f"the earliest with {MEMORIZED_SPLIT} >= {MEMORIZED_AT} and {GROKKED_SPLIT} "
                f"< {GROKKED_AT}")
        state = "meets" if r.met else "no checkpoint met the criterion; the stand-in is"
        words.append(f"- **{r.role}** ({crit}): {state} step {r.step} (train_inferred "
                     f"{r.train_inferred:.2f}, test_inferred_iid {r.test_inferred_iid:.2f}).")
    if "memorized" not in set(picks.role):
        words.append("- **memorized**: no distinct checkpoint is left for the control.")
    return "\n".join(words)


# ---------------------------------------------------------------- lens over fine-tuning
def bridge_top1(model, ds, table: dict, chunk: int = 2048):
    """Per query: answer correct (N,), the stages, and whether ``b`` is the top-1 lens token
    at the r1 position per stage (S, N) and at any position per stage (S, N)."""
    stages, correct, lens = site_lens(model, ds, table, targets=("b",), chunk=chunk)
    top = lens["b"][0] == 1                                            # (S, N, T)
    return correct, stages, top[:, :, R1_POSITION], top.any(2)


def probe_lens(model, ds, name: str, stage: str) -> dict:
    """Accuracy and the two bridge rules (grokbook.lens: strict = b top-1 at the r1 position
    at ``stage``; lenient, the study's = b top-1 at any stage and any position) on one probe
    set. "Found when wrong" (the bridge decoded although the answer is wrong) uses the
    strict rule only: the lenient one counts the recall of the first fact at the last stage."""
    table = ds.probes[name]
    row = {"probe": name, "n": n_rows(table), "accuracy": np.nan,
           "bridge_found_strict": np.nan, "bridge_found_lenient": np.nan,
           "bridge_found_when_wrong": np.nan}
    if not (table["r2"] >= 0).all():       # atomic facts: no bridge, accuracy only
        row["accuracy"] = float(site_lens(model, ds, table, targets=())[1].mean())
        return row
    correct, names, at_r1, anywhere = bridge_top1(model, ds, table)
    lenient, strict = anywhere.any(0), at_r1[names.index(stage)]
    row.update(accuracy=float(correct.mean()), bridge_found_strict=float(strict.mean()),
               bridge_found_lenient=float(lenient.mean()),
               bridge_found_when_wrong=float(strict[~correct].mean()) if (~correct).any()
               else np.nan)
    return row


def transfer_table(run, probes=PROBE_KINDS + PARENT_PROBES + (CONTROL_TEST, CONTROL_UNSEEN,
                                                             CONTROL_TRAINED), steps=None,
                   stage: str | None = None) -> pd.DataFrame:
    """Tidy table over the run's checkpoints: step, probe, n, accuracy, bridge_found_strict,
    bridge_found_lenient, bridge_found_when_wrong (strict rule, wrong answers only).

    Bridge columns are NaN for atomic probes. The strict stage (``attrs["strict_stage"]``)
    is fixed in advance for the whole run: by default the middle of the model's stages
    (``analysis.circuit.middle_stage``), never the last one, where b at the r1 position is
    only the recall of the first fact. ``attrs["strict_check"]``: the rule's positive check
    (``analysis.lens.strict_check``) on the old two-hop facts at the first step read.
    """
    ds = run.dataset
    names = [p for p in probes if p in ds.probes and n_rows(ds.probes[p])]
    rows, check = [], None
    for i, step in enumerate(steps if steps is not None else run.checkpoints):
        model = run.load_model(step)
        if i == 0:                       # the start: before any new fact was trained
            stage = stage or middle_stage(model.stage_names)
            if n_rows(ds.probes.get("old_inferred", {"h": []})):
                check = strict_check(model, ds, ds.probes["old_inferred"], stage)
        rows += [dict(step=step, **probe_lens(model, ds, p, stage)) for p in names]
    df = pd.DataFrame(rows)
    df.attrs["strict_stage"], df.attrs["strict_check"] = stage, check
    return df


def strict_rule_check(table: pd.DataFrame) -> dict:
    """Can the strict rule see a bridge in this model at all? The positive check
    ``transfer_table`` ran on the old two-hop facts at its first step: {"stage", "rate",
    "answered", "readable"} ("readable" False when no check could run)."""
    return table.attrs.get("strict_check") or {"stage": table.attrs.get("strict_stage"),
                                                "rate": float("nan"), "answered": 0,
                                                "readable": False}


# ---------------------------------------------------------------- the study beside ours
def probe_summary(table: pd.DataFrame, rising_below: float = 0.5) -> dict:
    """{probe: {"final", "best", "n", "lo", "hi", "steps", "rising"}} from one
    ``transfer_table``: the final accuracy with its 95 % Wilson interval, the best over the
    checkpoints, the last step and whether the curve was still rising below
    ``rising_below`` when fine-tuning ended (``detect.still_rising``)."""
    from .detect import still_rising
    out = {}
    for probe, g in table.groupby("probe", sort=False):
        curve = g.set_index("step")["accuracy"].sort_index()
        n, final = int(g.loc[g.step.idxmax(), "n"]), float(curve.iloc[-1])
        lo, hi = wilson(final, n)
        out[probe] = {"final": final, "best": float(curve.max()), "n": n, "lo": lo, "hi": hi,
                      "steps": int(curve.index[-1]),
                      "rising": still_rising(curve, rising_below)}
    return out


def compare_with_study(tables: dict) -> pd.DataFrame:
    """Final and best accuracy and final bridge rates per probe kind for each named table
    (e.g. {"grokked": t1, "memorized": t2}), beside the study's numbers."""
    parts = []
    for label, t in tables.items():
        last = t[t.step == t.step.max()].set_index("probe")
        s = pd.DataFrame(probe_summary(t)).T.reindex(last.index)
        parts.append(pd.DataFrame({
            "start": label, "final_accuracy": last["accuracy"],
            "final_lo": s["lo"].astype(float).round(4), "final_hi": s["hi"].astype(float).round(4),
            "best_accuracy": s["best"].astype(float),
            "bridge_lenient": last["bridge_found_lenient"],
            "bridge_strict": last["bridge_found_strict"], "n": last["n"]}))
    ours = pd.concat(parts).rename_axis("probe").reset_index()
    return ours.merge(TRANSFER_NUMBERS.drop(columns="source"), on="probe", how="left")


def retention(tables: dict, probes=("old_inferred", "old_atomic", "test_inferred_iid",
                                      "test_inferred_ood")) -> pd.DataFrame:
    """Old knowledge before and after fine-tuning: start, probe, before, after, change."""
    rows = []
    for label, t in tables.items():
        for probe in probes:
            p = t[t.probe == probe].sort_values("step")
            if len(p):
                before, after = float(p.accuracy.iloc[0]), float(p.accuracy.iloc[-1])
                rows.append((label, probe, before, after, after - before))
    return pd.DataFrame(rows, columns=["start", "probe", "before", "after", "change"])


def _verdict(acc: float, yes: float, no: float) -> str:
    if acc >= yes:
        return "composes"
    if acc <= no:
        return "does not compose"
    return "composes partly"


def claim3_answer(tables: dict, yes: float = 0.5, no: float = 0.2,
                  grokked_met: bool = True) -> str:
    """Claim 3 in plain words (markdown), computed from {role: ``transfer_table``} with the
    roles of ``chapter_configs`` (the grokked start first; the others when present)."""
    def final(t, probe, col="accuracy"):
        last = t[(t.step == t.step.max()) & (t.probe == probe)]
        return float(last[col].iloc[0]) if len(last) else float("nan")

    def first(t, probe, col="accuracy"):
        rows = t[(t.step == t.step.min()) & (t.probe == probe)]
        return float(rows[col].iloc[0]) if len(rows) else float("nan")

    g = tables["grokked"]
    start = "grokked" if grokked_met else "final (not grokked: no checkpoint met the criterion)"
    study = {"new_hop1_replayed_hop2": "composes", "replayed_hop1_new_hop2": "does not compose",
             "new_new": "does not compose"}     # the non-replayed probes: not asked there
    lines = [f"Fine-tuned from the {start} checkpoint, the model learned "
             f"{final(g, 'new_atomic'):.0%} of the new facts."]
    if final(g, "new_atomic") < yes:
        lines.append("- **Caveat:** most new facts were not learned, so a failure to compose "
                     "them below says little about the circuit; a longer fine-tuning (or a "
                     "larger preset) is needed for a verdict.")
    for probe, what in (("new_hop1_replayed_hop2", "a new fact as **hop 1** (old hop 2 "
                                                   "replayed, as in the study)"),
                        ("replayed_hop1_new_hop2", "a new fact as **hop 2** (old hop 1 "
                                                   "replayed, as in the study)"),
                        ("new_new", "**two new facts** (new+new)"),
                        ("new_hop1_old_hop2", "a new fact as hop 1 and an old fact that "
                                              "was *not* replayed as hop 2"),
                        ("old_hop1_new_hop2", "an old fact that was not replayed as hop 1 "
                                              "and a new fact as hop 2")):
        acc = final(g, probe)
        if acc != acc:      # a probe without queries at this scale
            lines.append(f"- With {what}: no queries at this scale.")
            continue
        v = _verdict(acc, yes, no)
        agree = ("a question the study did not ask" if probe not in study else
                 "as in the study" if v == study[probe] else f"the study: it {study[probe]}")
        lines.append(f"- With {what} it {v}: accuracy {acc:.2f} ({agree}).")
    check = strict_rule_check(g)
    nb, nw = final(g, "new_new", "bridge_found_lenient"), final(g, "new_new",
                                                                "bridge_found_when_wrong")
    lines.append(f"- On new+new queries the study's lenient rule finds the bridge entity in "
                 f"{nb:.0%} of cases (any stage, any position).")
    if not check["readable"]:
        lines.append(f"- The strict rule (b top-1 at the r1 position at `{check['stage']}`, "
                     f"fixed in advance) cannot see a bridge in this model: at the start of "
                     f"fine-tuning it decodes b for {check['rate']:.0%} of the "
                     f"{check['answered']} old compositions the model answers. "
                     f"So whether the bridge is resolved when the answer is wrong is **not "
                     f"measured** here; the lenient rate above also counts the recall of "
                     f"the first fact wherever it shows.")
    else:
        lines.append(f"- The strict rule (b top-1 at the r1 position at `{check['stage']}`, "
                     f"fixed in advance; it decodes {check['rate']:.0%} of old compositions "
                     f"at the start) finds the bridge in "
                     f"{final(g, 'new_new', 'bridge_found_strict'):.0%} of new+new queries and "
                     f"in {nw:.0%} of those answered wrong: "
                     + ("the bridge is resolved even when the answer is wrong, as the study "
                        "read it (97-99%, lenient)." if nw >= yes else
                        "when the answer is wrong, the bridge is mostly not resolved."))
    lines.append(f"- Old knowledge: two-hop facts that were not replayed go from "
                 f"{first(g, 'old_inferred'):.2f} to {final(g, 'old_inferred'):.2f}; "
                 f"held-out ID queries from {first(g, 'test_inferred_iid'):.2f} to "
                 f"{final(g, 'test_inferred_iid'):.2f}.")
    for role, words in (("memorized", "The memorized start (memorized, not yet grokked)"),
                        ("floor", "The floor model (atomic facts only, never a composition)")):
        if role in tables:
            c = tables[role]
            lines.append(f"- {words} reaches {final(c, 'new_hop1_replayed_hop2'):.2f} on hop "
                         f"1, {final(c, 'replayed_hop1_new_hop2'):.2f} on hop 2 (replayed "
                         f"old facts) and {final(c, 'new_new'):.2f} on new+new.")
    if "hop2_control" in tables:
        t = tables["hop2_control"]
        c, base, unseen = final(t, CONTROL_TEST), final(g, CONTROL_TEST), final(t, CONTROL_UNSEEN)
        lines.append(f"- The positive control (one composition with the new fact as hop 2 "
                     f"trained, for half the new facts) composes the *other* compositions of "
                     f"those facts at {c:.2f}, against {base:.2f} for the grokked start on the "
                     f"same queries: "
                     + ("hop-2 composition of new facts *can* be learned in this budget, once "
                        "a fact has been a second hop in training." if c > no and c > base else
                        "even with supervision hop 2 was not learned in this budget, so a "
                        "low hop 2 above says little.")
                     + f" On the other half, never a second hop in training, it reaches "
                       f"{unseen:.2f}.")
    return "\n".join(lines)


def curves(tables: dict) -> pd.DataFrame:
    """Long table for charts: start, step, probe, measure, value."""
    parts = [t.assign(start=label) for label, t in tables.items()]
    df = pd.concat(parts, ignore_index=True)
    return df.melt(id_vars=["start", "step", "probe"],
                   value_vars=["accuracy", "bridge_found_lenient", "bridge_found_strict"],
                   var_name="measure", value_name="value").dropna(subset=["value"])


def transfer_curves_chart(long: pd.DataFrame):
    """Altair: one panel per probe kind; accuracy and bridge rates over fine-tuning steps."""
    import altair as alt
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("step:Q", title="fine-tuning step"),
        y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("measure:N"), strokeDash=alt.StrokeDash("start:N"),
        tooltip=["start", "probe", "measure", "step", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=180, height=130).facet(facet="probe:N", columns=3)


__all__ = ["finetune_config", "chapter_finetune_settings", "floor_config", "chapter_configs",
           "ROLES", "pick_checkpoints",
           "describe_checkpoints", "describe_beside", "bridge_top1", "strict_rule_check", "probe_lens", "transfer_table",
           "compare_with_study", "probe_summary", "retention", "claim3_answer", "curves", "transfer_curves_chart"]
