"""Chapter 7's question beyond the study: can the wait for grokking be cut, and is what a
shortcut buys the same circuit?

Each shortcut is the subject's recipe with one change a practitioner would try -- larger
weight decay, a larger learning rate, more two-hop supervision (higher phi), or Grokfast's
slow-gradient amplifier (Lee et al. 2024, arXiv 2405.20233; ``train.grokfast_lamb``) --
trained until held-out ID accuracy reaches ``GROKKED_AT`` (``train.stop_at``). The table
gives steps and FLOPs to that point beside the natural run's (the subject run of chapter
2), and each grokked shortcut is compared with the naturally grokked model by claim 1's
path metric, seed scale and controls (``paths.claim1_evidence(..., others=...)``), and by
claim 3's transfer probes after the same fine-tuning as chapter 6's (``transfer_configs``).
"""
from __future__ import annotations

import math

import pandas as pd

from ..analysis.definitions import (GROKKED_AT, grokked_checkpoint, grokked_step, heldout_at,
                                    memorized_step)
from ..analysis.measures import flops_per_step_of
from ..core.config import preset
from ..core.data import build_dataset
from ..core.plan import Plan, Planned, plan_runs
from . import paths, transfer

CUT_GOAL = 1 / 3   # issue's bar: a shortcut that needs at most this fraction of the steps

WD_GAIN, LR_GAIN, PHI_GAIN = 2.5, 2.0, 4 / 3     # each shortcut scales one setting up
GROKFAST = {"train.grokfast_lamb": 2.0}           # alpha stays at its default, 0.98
NATURAL = "natural (the subject's recipe)"


def shortcuts_of(preset_name: str) -> dict:
    """{label: overrides}: the subject's recipe with one setting scaled up (weight decay,
    learning rate, phi -- when the larger phi fits the graph), or Grokfast switched on."""
    base = preset(preset_name)
    t, d = base.train, base.data
    out = {f"weight decay {t.weight_decay * WD_GAIN:.3g} (x{WD_GAIN:g})":
           {"train.weight_decay": round(t.weight_decay * WD_GAIN, 6)},
           f"learning rate {t.lr * LR_GAIN:.3g} (x{LR_GAIN:g})":
           {"train.lr": t.lr * LR_GAIN}}
    phi = round(d.phi * PHI_GAIN, 1)
    room = build_dataset(base.replace(**{"data.phi": 0.0}).data, base.seed).counts["max_phi"]
    if phi <= room:                               # the larger phi fits this graph
        out[f"phi {phi:g} (x{PHI_GAIN:.2g})"] = {"data.phi": phi}
    out[f"Grokfast (lambda {GROKFAST['train.grokfast_lamb']:g}, alpha "
        f"{base.train.grokfast_alpha:g})"] = dict(GROKFAST)
    return out


def shortcut_configs(preset_name: str) -> dict:
    """{label: Config}: the natural run (chapter 2's subject run, trained to its budget),
    then each shortcut, ended once it groks."""
    out = {NATURAL: preset(preset_name)}
    for label, over in shortcuts_of(preset_name).items():
        out[label] = preset(preset_name, **{**over, "train.stop_at": GROKKED_AT})
    return out


def plan(preset_name: str) -> Plan:
    """Chapter 7's runs: the natural run and each shortcut (``shortcut_configs``), then each
    one that grokked fine-tuned as the natural one (``transfer_configs``)."""
    cfgs = shortcut_configs(preset_name)
    natural = f"07/{NATURAL}"
    p = Plan(Planned(f"07/{label}", "07", "natural" if label == NATURAL else "shortcut", cfg)
             for label, cfg in cfgs.items())
    like = transfer.finetune_config_like(cfgs[NATURAL], preset_name)
    for label in cfgs:
        parents = (natural,) if label == NATURAL else (natural, f"07/{label}")
        p.add(Planned(f"07/finetune/{label}", "07", "fine-tune", after=parents,
                      build=lambda runs, lb=label: transfer_configs(
                          {NATURAL: runs[natural], lb: runs[f"07/{lb}"]}, preset_name).get(lb),
                      note="fine-tunes its grokked checkpoint; only when it grokked",
                      like=like))
    return p


def shortcut_runs(preset_name: str, store=None, progress: bool = False) -> dict:
    runs = plan_runs(plan(preset_name), store=store)
    return {n[3:]: r for n, r in runs.items() if not n.startswith("07/finetune/")}


def finetune_runs(preset_name: str, store=None) -> dict:
    """{label: fine-tuned Run} of the shortcuts that grokked (the natural one first)."""
    runs = plan_runs(plan(preset_name), store=store)
    return {n[len("07/finetune/"):]: r for n, r in runs.items()
            if n.startswith("07/finetune/") and r is not None}


def shortcut_table(runs: dict) -> pd.DataFrame:
    """One row per run: steps and FLOPs to memorize and to grok (None: not within the
    budget), held-out ID at memorization, and the fraction of the natural run's steps and
    FLOPs it needed to grok (a lower bound when the natural run never grokked)."""
    rows = []
    for label, run in runs.items():
        acc = run.accuracy()
        mem, grok = memorized_step(acc), grokked_step(acc)
        per_step = flops_per_step_of(run)
        rows.append({"shortcut": label, "run": run.id, "memorized_step": mem,
                     "heldout_at_memorized": heldout_at(acc, mem), "grokked_step": grok,
                     "grokked_flops": None if grok is None else grok * per_step,
                     "budget": run.config.train.max_steps})
    t = pd.DataFrame(rows)
    for col, ratio in (("grokked_step", "steps_vs_natural"),   # natural first;
                       ("grokked_flops", "flops_vs_natural")):  # NaN: did not grok
        x = t[col].astype(float)
        t[ratio] = x / x.iloc[0]
    return t


def others(runs: dict) -> dict:
    """The shortcuts as claim 1's ``others`` ({label: (run, its grokked checkpoint)}), each
    to be compared with the naturally grokked model."""
    return {k: (r, paths.after_checkpoint(r)) for k, r in runs.items() if k != NATURAL}


def shortcut_verdicts(table: pd.DataFrame, ev: dict) -> pd.DataFrame:
    """The table with each shortcut's path outcome against the naturally grokked model."""
    others = ev.get("others", {})
    out = table.copy()
    out["path_vs_natural"] = [others.get(k, {}).get("outcome", "-") for k in out["shortcut"]]
    out["path_d"] = [others.get(k, {}).get("d", {}).get("d") for k in out["shortcut"]]
    out["path_why"] = [others.get(k, {}).get("reason", "") for k in out["shortcut"]]
    return out


# ---------------------------------------------------------------- transfer of new facts
SAME_TRANSFER, DIFFERENT_TRANSFER = "no difference", "different"
TRANSFER_PROBES = ("new_hop1_replayed_hop2", "replayed_hop1_new_hop2")   # hop 1, hop 2


def transfer_configs(runs: dict, preset_name: str) -> dict:
    """{label: fine-tuning Config} for every run of ``runs`` that grokked (the natural one
    first): fine-tuned from its grokked checkpoint on the natural run's transfer set with
    chapter 6's settings and the natural recipe (its phi and weight decay, no Grokfast, no
    early stop), so only the starting weights differ. The natural one is chapter 6's
    grokked start."""
    base = runs[NATURAL].config
    same = {"data.phi": base.data.phi, "train.weight_decay": base.train.weight_decay,
            "train.grokfast_alpha": base.train.grokfast_alpha,
            "train.grokfast_lamb": base.train.grokfast_lamb, "train.stop_at": base.train.stop_at,
            **transfer.chapter_finetune_settings(preset_name)}
    out = {}
    for label, run in runs.items():
        step = grokked_checkpoint(run)
        if step is not None:
            out[label] = transfer.finetune_config(run, step, **same)
    return out


def transfer_rows(finetunes: dict, known: dict | None = None) -> pd.DataFrame:
    """Per fine-tuned run (the natural one first): new facts learned, then new-as-hop-1 and
    new-as-hop-2 (the study's probes) at the end with 95 % intervals, and
    ``transfer_vs_natural``: "different" if either probe's interval lies apart from the
    natural run's, "no difference" if both overlap, "not measured" if the new facts were
    not learned (best < ``transfer.NEW_LEARNED``). ``known``: {run id: probe_summary}
    already computed (the natural run's is chapter 6's grokked start): not read again."""
    rows, nat = [], None
    for label, run in finetunes.items():
        s = (known or {}).get(run.id) or transfer.probe_summary(transfer.transfer_table(
            run, probes=("new_atomic", *TRANSFER_PROBES)))
        row = {"shortcut": label, "finetune_run": run.id}
        for key, probe in zip(("hop1", "hop2"), TRANSFER_PROBES):
            row.update({key: s[probe]["final"], f"{key}_lo": s[probe]["lo"],
                        f"{key}_hi": s[probe]["hi"]})
        learned = s["new_atomic"]["best"] >= transfer.NEW_LEARNED
        if nat is None:
            nat, row["transfer_vs_natural"] = row, "-"
        elif not learned:
            row["transfer_vs_natural"] = "not measured"
        else:
            apart = any(row[f"{k}_lo"] > nat[f"{k}_hi"] or row[f"{k}_hi"] < nat[f"{k}_lo"]
                        for k in ("hop1", "hop2"))
            row["transfer_vs_natural"] = DIFFERENT_TRANSFER if apart else SAME_TRANSFER
        rows.append(row)
    return pd.DataFrame(rows)


def with_transfer(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``shortcut_verdicts``' table with ``transfer_rows``' columns ("-" where a run did not
    grok, so it was not fine-tuned)."""
    if not len(rows):
        return table.assign(transfer_vs_natural="-")
    out = table.merge(rows, on="shortcut", how="left")
    out["transfer_vs_natural"] = out["transfer_vs_natural"].fillna("-")
    return out


def _ratio(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}x"


def describe(table: pd.DataFrame) -> str:
    """What the shortcuts bought, in words computed from ``shortcut_verdicts``' table."""
    nat = table.iloc[0]
    if nat["grokked_step"] is None or pd.isna(nat["grokked_step"]):
        return (f"The natural run did not grok within its {nat['budget']:,} steps, so no "
                f"speed-up can be stated; the table shows which shortcuts grokked at all.")
    parts = [f"The natural run grokked at step {int(nat['grokked_step']):,}."]
    cut = []
    fine_tuned = "hop1" in table and pd.notna(nat["hop1"])      # transfer_rows' columns
    for r in table.iloc[1:].itertuples():
        if r.grokked_step is None or pd.isna(r.grokked_step):
            parts.append(f"{r.shortcut}: did not grok within {r.budget:,} steps.")
            continue
        moved = (f"; transfer of new facts after fine-tuning: hop 1 {r.hop1:.2f}, hop 2 "
                 f"{r.hop2:.2f} ({r.transfer_vs_natural} from the natural run's "
                 f"{nat['hop1']:.2f} / {nat['hop2']:.2f})"
                 if fine_tuned and pd.notna(r.hop1) else "")
        parts.append(f"{r.shortcut}: step {int(r.grokked_step):,} "
                     f"({_ratio(r.steps_vs_natural)} the natural steps, "
                     f"{_ratio(r.flops_vs_natural)} its FLOPs); path vs the naturally "
                     f"grokked model: {r.path_vs_natural}{moved}.")
        if r.steps_vs_natural <= CUT_GOAL:
            cut.append(r.shortcut)
    parts.append(f"Shortcuts that cut the wait to at most {CUT_GOAL:.2f} of the natural "
                 f"steps: {', '.join(cut) if cut else 'none'}.")
    return " ".join(parts)
