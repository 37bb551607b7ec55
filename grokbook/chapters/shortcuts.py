"""Chapter 7's question beyond the study: can the wait for grokking be cut, and is what a
shortcut buys the same circuit?

Each shortcut is the subject's recipe with one change a practitioner would try
(``SHORTCUTS``): larger weight decay, a larger learning rate, more two-hop supervision
(higher phi), a smaller initial weight scale (Liu et al.'s Omnigrok), Grokfast's
slow-gradient amplifier (Lee et al. 2024), the Muon optimiser (Tveit et al. 2025), and
StableMax cross-entropy with the perpendicular gradient (Prieto et al. 2025). The protocol
is fixed before its runs:

1. **Tuning** (``tuning_plan``, ``tune``; ``grokbook shortcuts --tune``): each shortcut's
   one knob takes each value of its declared grid on the tuning seeds (the subject search's
   seeds, never the claim seeds); the value with the fewest median steps to held-out ID
   0.9 wins (``TUNE_RULE``). The summary is written to ``results/shortcut_tuning_<preset>
   .json`` and committed; the chapter reads it (``tuned``) and trains only tuned shortcuts.
2. **Measurement** (``plan``): the tuned setting on every claim seed, each run ended once
   it groks; the natural run of a seed is chapter 2's subject run on it.
3. **Per shortcut** (``wait_cut_table``): speed-up in steps (natural / shortcut, per seed;
   median with a bootstrap interval over seeds), seconds and FLOPs to grok, whether the
   run still had a clean wait, claim 1's path rule against the naturally grokked model of
   the same seed (``paths.claim1_evidence(..., others=...)``), and on the first claim
   seed claim 3's transfer after chapter 6's fine-tuning (``transfer_configs``).
"""
from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analysis.definitions import (GROKKED_AT, grokked_checkpoint, grokked_step, heldout_at,
                                    memorized_step)
from ..analysis.measures import flops_per_step_of
from ..analysis.seeds import MIN_SEEDS, median_interval, not_measured
from ..core.config import ConfigError, preset
from ..core.data import build_dataset
from ..core.plan import Plan, Planned, plan_runs, resolve
from ..core.store import store_path
from . import paths, settings, transfer
from .subject import BEFORE_AT, REPO, _commit, _write

NATURAL = "natural"
CUT_AT = 2.0        # a shortcut "cuts the wait" when its median speed-up is at least this
                    # and the low end of its interval lies above 1


@dataclass(frozen=True)
class Shortcut:
    """One change to the subject's recipe: ``fixed`` switches it on, ``knob`` is the one
    setting tuned over ``grid`` (gains on the subject's own value when ``relative``)."""
    label: str
    knob: str
    grid: tuple
    relative: bool = False
    fixed: tuple = ()
    cite: str = ""

    def values(self, base) -> list:
        """The grid's values for the subject ``base`` (a phi above the graph's max_phi is
        left out: that graph has no room for it)."""
        own = _field(base, self.knob)
        vals = [round(own * g, 6) if self.relative else g for g in self.grid]
        if self.knob == "data.phi":
            room = build_dataset(base.replace(**{"data.phi": 0.0}).data,
                                 base.seed).counts["max_phi"]
            vals = [v for v in vals if v <= room]
        return vals

    def overrides(self, value) -> dict:
        return {**dict(self.fixed), self.knob: value}

    def config(self, base, value, seed: int):
        """The shortcut at ``value`` on ``seed``, ended once held-out ID reaches 0.9."""
        return base.replace(seed=seed, **self.overrides(value), **STOP)

    def declaration(self) -> dict:
        return {"knob": self.knob, "grid": list(self.grid), "relative": self.relative,
                "fixed": dict(self.fixed)}


STOP = {"train.stop_at": GROKKED_AT, "train.stop_after_grokked": 0.0}

# Fixed before any of their runs. Grids are small (two values) so that the tuning costs
# about as much as the measurement; relative grids scale the subject's own value.
SHORTCUTS = (
    Shortcut("weight decay", "train.weight_decay", (2.0, 4.0), relative=True,
             cite="liu2023omnigrok"),
    Shortcut("learning rate", "train.lr", (1.5, 2.0), relative=True),
    Shortcut("phi", "data.phi", (1.15, 1.3), relative=True, cite="wang2024grokked"),
    Shortcut("initial scale", "model.init_scale", (0.25, 0.5), relative=True,
             cite="liu2023omnigrok"),
    Shortcut("Grokfast", "train.grokfast_lamb", (2.0, 5.0), cite="lee2024grokfast"),
    Shortcut("Muon", "train.muon_lr", (0.01, 0.02), fixed=(("train.optimizer", "muon"),),
             cite="tveit2025muon"),
    Shortcut("StableMax + perpendicular gradient", "train.lr", (1.0, 2.0), relative=True,
             fixed=(("train.loss", "stablemax"), ("train.perp_grad", True)),
             cite="prieto2025stability"),
)
BY_LABEL = {s.label: s for s in SHORTCUTS}

TUNE_RULE = ("each shortcut takes the value of its grid with the fewest median steps to "
             f"held-out ID {GROKKED_AT} over the tuning seeds (a run that did not grok "
             "counts as its budget); a tie goes to the value listed first")


def _field(cfg, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def tuning_seeds(preset_name: str) -> list[int]:
    """The seeds the tuning reads (``settings``): the subject search's, never a claim seed."""
    seeds = list(settings.of(preset_name)["shortcut_tuning_seeds"])
    clash = set(seeds) & set(paths.claim_seeds(preset_name))
    if clash:
        raise ConfigError(f"shortcut_tuning_seeds: {sorted(clash)} are claim seeds; tuning "
                          f"and measurement must use different seeds")
    return seeds


# ---------------------------------------------------------------- 1. tuning
def tuning_plan(preset_name: str) -> Plan:
    """Every shortcut at every value of its grid on every tuning seed."""
    base = preset(preset_name)
    p = Plan()
    for sc in SHORTCUTS:
        for v in sc.values(base):
            for s in tuning_seeds(preset_name):
                p.add(Planned(f"07/tune/{sc.label}/{v:g}/seed {s}", "07", "tuning",
                              sc.config(base, v, s),
                              labels={"shortcut": sc.label, "value": v, "seed": s}))
    return p


def _steps(run) -> tuple:
    """(steps to grok, censored): a run that did not grok counts as its budget."""
    g = grokked_step(run.accuracy())
    return (g, False) if g is not None else (run.config.train.max_steps, True)


def choose(rows: list[dict]) -> dict:
    """{shortcut: value} by ``TUNE_RULE`` from the tuning rows (in grid order)."""
    out = {}
    for sc in SHORTCUTS:
        mine = [r for r in rows if r["shortcut"] == sc.label]
        values = list(dict.fromkeys(r["value"] for r in mine))
        if values:
            med = {v: statistics.median(r["steps"] for r in mine if r["value"] == v)
                   for v in values}
            out[sc.label] = min(values, key=lambda v: (med[v], values.index(v)))
    return out


def declaration(preset_name: str) -> dict:
    return {"shortcuts": {s.label: s.declaration() for s in SHORTCUTS},
            "seeds": tuning_seeds(preset_name), "rule": TUNE_RULE}


def tune(preset_name: str = "cpu", store=None, out=None, workers: int | None = None,
         log=print) -> dict:
    """Run the tuning (``tuning_plan``) through the run store (resumable) and write its
    summary to ``out`` (default ``results/shortcut_tuning_<preset>.json``): every run's
    milestones, the median steps per value and the chosen value, with commit and dates.
    The summary is rewritten as each run finishes, its unfinished runs listed under
    "pending" and nothing chosen until every run is in, so an interrupted tuning leaves a
    record of what it has (and the same command resumes it from the store)."""
    out = Path(out or f"results/shortcut_tuning_{preset_name}.json")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    plan = tuning_plan(preset_name)
    log(f"tuning: {len(plan)} runs ({len(SHORTCUTS)} shortcuts)")
    rows: dict = {}                    # entry name -> its row, read once per run

    def write() -> dict:
        pending = [e.name for e in plan if e.name not in rows]
        done = [rows[e.name] for e in plan if e.name in rows]
        summary = {"preset": preset_name, "commit": _commit(), "started": started,
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "declaration": declaration(preset_name), "rows": done,
                   "pending": pending, "chosen": {} if pending else choose(done)}
        _write(out, summary)
        return summary

    def report(outcome, n, total):
        if outcome.run is None:
            return
        rows[outcome.name] = _tuning_row(plan.entries[outcome.name], outcome.run)
        if outcome.status != "stored":
            write()
            log(f"tuning: {n} of {total} runs in ({outcome.name})")

    resolve(plan, store_path(store), workers=workers, report=report)
    return write()


def _tuning_row(entry, run) -> dict:
    acc = run.accuracy()
    steps, censored = _steps(run)
    mem = memorized_step(acc)
    return {**entry.labels, "run": run.id, "memorized_step": mem,
            "heldout_at_memorized": heldout_at(acc, mem),
            "grokked_step": None if censored else steps, "steps": steps,
            "censored": censored}


def tuning_path(preset_name: str, root=None) -> Path:
    return Path(root or REPO) / "results" / f"shortcut_tuning_{preset_name}.json"


def read_tuning(preset_name: str, root=None) -> dict | None:
    p = tuning_path(preset_name, root)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError as e:
        raise ConfigError(f"{p}: not a tuning summary ({e}); restore it from the repository "
                          f"or run `grokbook shortcuts --tune --preset {preset_name}`") from None


def tuned(preset_name: str, summary: dict | None = None) -> dict:
    """{shortcut: value} chosen by the committed tuning of ``preset_name``, for each
    shortcut whose declaration (knob, grid, seeds) is the one it was tuned under; a
    shortcut tuned under another declaration, or not at all, is absent."""
    s = summary if summary is not None else read_tuning(preset_name)
    if not s or s.get("pending"):          # an unfinished tuning chooses nothing
        return {}
    now = declaration(preset_name)
    if s["declaration"].get("seeds") != now["seeds"]:
        return {}
    return {k: v for k, v in s.get("chosen", {}).items()
            if k in BY_LABEL and s["declaration"]["shortcuts"].get(k) == now["shortcuts"][k]}


def not_tuned(preset_name: str, summary: dict | None = None) -> list[str]:
    return [s.label for s in SHORTCUTS if s.label not in tuned(preset_name, summary)]


def tuning_table(summary: dict | None) -> pd.DataFrame:
    """Per shortcut and value: median steps to grok over the tuning seeds, how many
    grokked, and which value was chosen."""
    if not summary or not summary.get("rows"):
        return pd.DataFrame()
    t = pd.DataFrame(summary["rows"])
    g = t.groupby(["shortcut", "value"], sort=False).agg(
        seeds=("seed", "count"), grokked=("censored", lambda c: int((~c).sum())),
        median_steps=("steps", "median")).reset_index()
    g["chosen"] = [summary["chosen"].get(s) == v for s, v in zip(g["shortcut"], g["value"])]
    return g


# ---------------------------------------------------------------- 2. measurement
def _name(seed: int, label: str) -> str:
    return f"07/seed {seed}/{label}"


def plan(preset_name: str) -> Plan:
    """Chapter 7's runs: on every claim seed the natural run (chapter 2's subject run) and
    each tuned shortcut at its chosen value; on the first claim seed, each one that
    grokked fine-tuned as chapter 6 fine-tunes the natural one (``transfer_configs``)."""
    base, chosen = preset(preset_name), tuned(preset_name)
    seeds = paths.claim_seeds(preset_name)
    p = Plan()
    for s in seeds:
        p.add(Planned(_name(s, NATURAL), "07", "natural", base.replace(seed=s),
                      labels={"seed": s, "shortcut": NATURAL}))
        for sc in SHORTCUTS:
            if sc.label in chosen:
                p.add(Planned(_name(s, sc.label), "07", "shortcut",
                              sc.config(base, chosen[sc.label], s),
                              labels={"seed": s, "shortcut": sc.label,
                                      "value": chosen[sc.label]}))
    first = seeds[0]
    natural = _name(first, NATURAL)
    like = transfer.finetune_config_like(base.replace(seed=first), preset_name)
    for label in [NATURAL, *chosen]:
        parents = (natural,) if label == NATURAL else (natural, _name(first, label))
        p.add(Planned(f"07/seed {first}/finetune/{label}", "07", "fine-tune", after=parents,
                      build=lambda runs, lb=label: transfer_configs(
                          {NATURAL: runs[natural], lb: runs[_name(first, lb)]},
                          preset_name).get(lb),
                      note="fine-tunes its grokked checkpoint; only when it grokked",
                      like=like, labels={"seed": first, "shortcut": label}))
    return p


def split_runs(runs: dict) -> tuple[dict, dict]:
    """Chapter 7's runs by name ({"seed S/LABEL"...}, without "07/") as ({seed: {label:
    run}}, {label: fine-tuned run} of the first seed)."""
    by_seed, tunes = {}, {}
    for key, run in runs.items():
        if run is None or key.startswith("tune/"):
            continue
        seed, _, rest = key.partition("/")
        if rest.startswith("finetune/"):
            tunes[rest[len("finetune/"):]] = run
        else:
            by_seed.setdefault(int(seed.split()[1]), {})[rest] = run
    return by_seed, tunes


def chapter_runs(preset_name: str, store=None) -> tuple[dict, dict]:
    runs = plan_runs(plan(preset_name), store=store)
    return split_runs({n[3:]: r for n, r in runs.items()})


# ---------------------------------------------------------------- 3. per shortcut
def _seconds_to(run, step) -> float | None:
    """Seconds this run took to reach ``step``, from its own steps per second."""
    if step is None or not run.steps:
        return None
    return run.info["wall_seconds"] * step / run.steps


def seed_rows(by_seed: dict) -> pd.DataFrame:
    """One row per seed and shortcut (the natural run first on each seed): milestones,
    clean wait, and the speed-up over the natural run of the same seed in steps
    (``speedup``; a shortcut that did not grok counts as its budget, an upper bound:
    ``censored``), seconds and FLOPs; None where the natural run did not grok."""
    rows = []
    for seed, runs in by_seed.items():
        nat = runs.get(NATURAL)
        n_steps = grokked_step(nat.accuracy()) if nat is not None else None
        for label, run in runs.items():
            acc = run.accuracy()
            mem, grok = memorized_step(acc), grokked_step(acc)
            held = heldout_at(acc, mem)
            steps = grok if grok is not None else run.config.train.max_steps
            per = flops_per_step_of(run)
            row = {"seed": seed, "shortcut": label, "run": run.id, "memorized_step": mem,
                   "heldout_at_memorized": held, "grokked_step": grok,
                   "budget": run.config.train.max_steps,
                   "clean_wait": mem is not None and held is not None and held <= BEFORE_AT,
                   "censored": grok is None, "seconds_to_grok": _seconds_to(run, grok),
                   "flops_to_grok": None if grok is None else grok * per,
                   "speedup": None, "seconds_speedup": None, "flops_speedup": None}
            if n_steps is not None and label != NATURAL:
                row["speedup"] = n_steps / steps
                if grok is not None:
                    row["seconds_speedup"] = (_seconds_to(nat, n_steps)
                                              / _seconds_to(run, grok))
                    row["flops_speedup"] = n_steps * flops_per_step_of(nat) / (grok * per)
            rows.append(row)
    return pd.DataFrame(rows)


SAME_CIRCUIT, OTHER_CIRCUIT, MIXED = "same", "different", "mixed"


def path_outcome(outcomes: list[str]) -> tuple[str, str]:
    """(outcome, why) of one shortcut's path rule over seeds (claim 1's per-seed outcomes
    against the naturally grokked model of the seed): same if most decided seeds are same
    and none different, different the reverse, mixed if both occur; not measured with
    fewer than ``MIN_SEEDS`` decided."""
    from ..analysis.circuit import DIFFERENT, SAME
    same, diff = outcomes.count(SAME), outcomes.count(DIFFERENT)
    n = same + diff
    said = f"{same} of {len(outcomes)} seeds same, {diff} different"
    why = not_measured(n, what="seeds decided")
    if why:
        return "not measured", f"{said}: {why}"
    if 2 * same > n and not diff:
        return SAME_CIRCUIT, said
    if 2 * diff > n and not same:
        return OTHER_CIRCUIT, said
    return MIXED if same and diff else "not measured", said


def wait_cut_table(rows: pd.DataFrame, evidence: dict, transfer_: pd.DataFrame | None = None,
                   preset_name: str | None = None) -> pd.DataFrame:
    """One row per shortcut: its tuned setting, seeds, how many grokked and had a clean
    wait, the speed-up in steps (median and 95 % bootstrap interval over seeds), in
    seconds and FLOPs (medians over the seeds where both grokked), the path outcome over
    seeds, transfer on the first seed, and whether it cuts the wait (``CUT_AT``).
    ``evidence``: {seed: claim 1 evidence with ``others``}."""
    chosen = tuned(preset_name) if preset_name else {}
    out = []
    if not len(rows):
        return pd.DataFrame()
    for label in [s.label for s in SHORTCUTS]:
        mine = rows[rows["shortcut"] == label]
        if not len(mine):
            continue
        sp = [x for x in mine["speedup"] if x is not None and not pd.isna(x)]
        med, lo, hi = median_interval(sp)
        outs = [evidence.get(s, {}).get("others", {}).get(label, {}).get("outcome", "-")
                for s in mine["seed"]]
        path, why = path_outcome(outs)
        from ..analysis.circuit import SAME
        t = {"shortcut": label, "setting": _setting(label, chosen.get(label)),
             "seeds": len(mine), "grokked": int((~mine["censored"]).sum()),
             "clean_wait": int(mine["clean_wait"].sum()), "measured": len(sp),
             "speedup": med, "speedup_lo": lo, "speedup_hi": hi,
             "seconds_speedup": _median(mine["seconds_speedup"]),
             "flops_speedup": _median(mine["flops_speedup"]),
             "path": path, "path_why": why, "same_share": outs.count(SAME) / len(outs),
             "transfer": "-"}
        if transfer_ is not None and len(transfer_) and label in set(transfer_["shortcut"]):
            tr = transfer_.set_index("shortcut").loc[label]
            t.update(transfer=tr["transfer_vs_natural"], hop1=tr["hop1"], hop2=tr["hop2"])
        t["cuts"] = (len(sp) >= MIN_SEEDS and med >= CUT_AT and lo > 1)
        out.append(t)
    return pd.DataFrame(out)


def _median(col):
    v = [x for x in col if x is not None and not pd.isna(x)]
    return statistics.median(v) if v else None


def _setting(label: str, value) -> str:
    if value is None:
        return "-"
    sc = BY_LABEL[label]
    on = ", ".join(f"{k.split('.')[-1]} {v}" for k, v in sc.fixed)
    return f"{sc.knob.split('.')[-1]} {value:g}" + (f" ({on})" if on else "")


def others(by_seed: dict, seed: int) -> dict:
    """The shortcuts of ``seed`` as claim 1's ``others`` ({label: (run, grokked
    checkpoint)}), each compared with the naturally grokked model of that seed."""
    return {k: (r, paths.after_checkpoint(r)) for k, r in by_seed.get(seed, {}).items()
            if k != NATURAL}


# ---------------------------------------------------------------- transfer of new facts
SAME_TRANSFER, DIFFERENT_TRANSFER = "no difference", "different"
TRANSFER_PROBES = ("new_hop1_replayed_hop2", "replayed_hop1_new_hop2")   # hop 1, hop 2


def transfer_configs(runs: dict, preset_name: str) -> dict:
    """{label: fine-tuning Config} for every run of ``runs`` that grokked (the natural one
    first): fine-tuned from its grokked checkpoint on the natural run's transfer set with
    chapter 6's settings and the natural recipe (its phi, weight decay, optimiser and loss,
    no Grokfast, no early stop), so only the starting weights differ. The natural one is
    chapter 6's grokked start of that seed."""
    base = runs[NATURAL].config
    t = base.train
    same = {"data.phi": base.data.phi, "train.weight_decay": t.weight_decay,
            "train.grokfast_alpha": t.grokfast_alpha, "train.grokfast_lamb": t.grokfast_lamb,
            "train.stop_at": t.stop_at, "train.optimizer": t.optimizer,
            "train.loss": t.loss, "train.perp_grad": t.perp_grad,
            **transfer.chapter_finetune_settings(preset_name)}
    out = {}
    for label, run in runs.items():
        step = grokked_checkpoint(run)
        if step is not None:
            out[label] = transfer.finetune_config(run, step, **same)
    return out


def transfer_rows(finetunes: dict, known: dict | None = None) -> pd.DataFrame:
    """Per fine-tuned run (the natural one first): new-as-hop-1 and new-as-hop-2 (the
    study's probes) at the end with 95 % intervals, and ``transfer_vs_natural``:
    "different" if either probe's interval lies apart from the natural run's, "no
    difference" if both overlap, "not measured" if the new facts were not learned (best <
    ``transfer.NEW_LEARNED``). ``known``: {run id: probe_summary} already computed."""
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


# ---------------------------------------------------------------- words and a chart
def _x(v, digits=2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}x"


def describe(table: pd.DataFrame, missing: list[str] | None = None) -> str:
    """What each shortcut bought, in words computed from ``wait_cut_table``."""
    parts = []
    for r in table.itertuples():
        if not r.measured:
            parts.append(f"{r.shortcut} ({r.setting}): no speed-up measured (the natural "
                         f"run grokked on none of its seeds).")
            continue
        moved = (f"; transfer after fine-tuning (first seed): hop 1 {r.hop1:.2f}, hop 2 "
                 f"{r.hop2:.2f}, {r.transfer} from the natural run"
                 if getattr(r, "hop1", None) is not None and not pd.isna(r.hop1) else "")
        parts.append(f"{r.shortcut} ({r.setting}): {_x(r.speedup)} fewer steps "
                     f"[{_x(r.speedup_lo)}, {_x(r.speedup_hi)}] over {r.measured} seeds "
                     f"({r.grokked} of {r.seeds} grokked, {r.clean_wait} with a clean "
                     f"wait; {_x(r.seconds_speedup)} in seconds); circuit: {r.path} "
                     f"({r.path_why}){moved}.")
    cut = [r.shortcut for r in table.itertuples() if r.cuts]
    parts.append(f"Shortcuts that cut the wait (median speed-up >= {CUT_AT:g}x, interval "
                 f"above 1x): {', '.join(cut) if cut else 'none'}.")
    if missing:
        parts.append(f"Not tuned at this preset, so not trained: {', '.join(missing)}.")
    return " ".join(parts)


def wait_cut_chart(table: pd.DataFrame):
    """Speed-up (log scale, with its interval) against the share of decided seeds whose
    circuit is the naturally grokked one; colour: transfer on the first seed."""
    import altair as alt
    t = table[table["measured"] > 0]
    base = alt.Chart(t).encode(
        y=alt.Y("same_share:Q", title="share of seeds with the same circuit",
                scale=alt.Scale(domain=[0, 1])))
    bars = base.mark_rule().encode(x=alt.X("speedup_lo:Q", scale=alt.Scale(type="log"),
                                           title="speed-up in steps (x natural)"),
                                   x2="speedup_hi:Q")
    dots = base.mark_circle(size=120).encode(
        x="speedup:Q", color=alt.Color("transfer:N", title="transfer"),
        tooltip=["shortcut", "setting", "speedup", "speedup_lo", "speedup_hi", "path",
                 "transfer"])
    text = base.mark_text(dy=-12).encode(x="speedup:Q", text="shortcut:N")
    line = alt.Chart(pd.DataFrame({"x": [CUT_AT]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    return (bars + dots + text + line).properties(width=520, height=260)

