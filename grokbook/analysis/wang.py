"""Wang et al.'s findings as rules over seeds that can come out either way.

Each rule takes measured numbers per seed (never end values of runs stopped early) and
returns ``(verdict, why, numbers)``; its text (``RULE_TEXT``) is written from the same
thresholds, in a few lines. The shared precondition ("not measured" with too few seeds,
or too many censored) is ``seeds.not_measured``. A run that did not reach a milestone
within its budget is *censored*, never a refutation.
"""
from __future__ import annotations

import pandas as pd

from .definitions import (GROKKED_AT, MEMORIZED_AT, NOT_MEASURED, NOT_REPLICATED, PARTLY,
                          REPLICATES)
from .seeds import MIN_SEEDS, mean_interval, not_measured, share_interval, slope_interval

BEFORE_AT = 0.2       # held-out ID accuracy at the memorized step that counts as "not yet"
OOD_LOW, OOD_SOME = 0.1, 0.3   # mean final OOD accuracy: "near 0", "partly"
SLOPE_X = 0.5         # |slope| of log steps on log phi or size below this: "does not follow"
MIN_VALUES = 4        # phi values a trend needs
MIN_SIZES = 3         # graph sizes a comparison needs

# what one seed of the subject did (``seed_class``)
WAITED = "grokked after a wait"
NO_WAIT = "grokked without a wait"
RISING = "still rising at its budget"        # censored
FLAT = "memorized, not grokked, flat"
NEVER = "never memorized"                    # censored
SEED_CLASSES = (WAITED, NO_WAIT, RISING, FLAT, NEVER)

RULE_TEXT = {
    "wang_grokking": (
        f"Each seed of the subject either groks after a wait (held-out ID <= {BEFORE_AT} when "
        f"train_inferred first reaches {MEMORIZED_AT}, then >= {GROKKED_AT} within the "
        f"budget), groks without one, stays flat, or is censored (still rising, or never "
        f"memorized). Replicates if the 95 % Wilson interval of the share that waited lies "
        f"above 1/2; does not replicate if it lies below; partly otherwise."),
    "wang_ood": (
        f"The subject's final OOD two-hop accuracy per seed, mean with a 95 % bootstrap "
        f"interval over seeds: replicates if the interval lies below {OOD_LOW} (near 0); "
        f"does not replicate if it lies above {OOD_SOME}; partly otherwise."),
    "wang_phi": (
        f"Slope of log(step to held-out {GROKKED_AT}) on log(phi) over >= {MIN_VALUES} phi "
        f"values x >= {MIN_SEEDS} seeds, 95 % bootstrap interval over seeds (a censored run "
        f"counts as its budget): replicates if the interval lies below 0; does not "
        f"replicate if it lies above -{SLOPE_X}; not measured if it straddles both."),
    "wang_size": (
        f"Slope of log(step to held-out {GROKKED_AT}) on log(graph size) at one phi over >= "
        f"{MIN_SIZES} sizes x >= {MIN_SEEDS} seeds, 95 % bootstrap interval: replicates if "
        f"it holds 0 and lies within +-{SLOPE_X} (a 4x graph changes the steps by < 2x); "
        f"does not replicate if it excludes 0; not measured if wider than +-{SLOPE_X}."),
}


def seed_class(memorized, grokked, heldout_at_memorized, rising: bool = False) -> str:
    """What one seed did (``SEED_CLASSES``); ``rising``: held-out ID was still climbing
    when a run that did not grok ended."""
    if memorized is None:
        return NEVER
    if grokked is not None:
        return WAITED if heldout_at_memorized <= BEFORE_AT else NO_WAIT
    return RISING if rising else FLAT


def grokking_verdict(classes: list[str]) -> tuple:
    """(verdict, why, numbers) from the seeds' ``seed_class``."""
    n = len(classes)
    censored = sum(c in (RISING, NEVER) for c in classes)
    k = sum(c == WAITED for c in classes)
    share, lo, hi = share_interval(k, n)
    numbers = {"waited": k, "seeds": n, "share": share, "lo": lo, "hi": hi,
               "classes": {c: classes.count(c) for c in SEED_CLASSES if c in classes}}
    why = not_measured(n, censored=censored)
    if why:
        return NOT_MEASURED, why, numbers
    said = f"{k} of {n} seeds grok after a wait (share {share:.2f}, 95 % [{lo:.2f}, {hi:.2f}])"
    if lo > 0.5:
        return REPLICATES, said, numbers
    if hi < 0.5:
        return NOT_REPLICATED, said, numbers
    return PARTLY, said, numbers


def ood_verdict(values: list[float]) -> tuple:
    """(verdict, why, numbers) from the final OOD accuracy of each seed."""
    vals = [v for v in values if v is not None and v == v]
    mean, lo, hi = mean_interval(vals)
    numbers = {"per_seed": vals, "mean": mean, "lo": lo, "hi": hi}
    why = not_measured(len(vals))
    if why:
        return NOT_MEASURED, why, numbers
    said = f"mean final OOD accuracy {mean:.3f} (95 % [{lo:.3f}, {hi:.3f}]) over {len(vals)} seeds"
    if hi < OOD_LOW:
        return REPLICATES, said, numbers
    if lo > OOD_SOME:
        return NOT_REPLICATED, said, numbers
    return PARTLY, said, numbers


def censored_steps(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """``table`` rows (key, seed, grokked_step, budget) -> key, seed, step (the grokked step,
    or the budget when censored), censored."""
    t = table.copy()
    t["censored"] = t["grokked_step"].isna()
    t["step"] = t["grokked_step"].where(~t["censored"], t["budget"]).astype(float)
    return t[[key, "seed", "step", "censored"]]


def _slope_numbers(table: pd.DataFrame, key: str, need: int):
    """(censored steps of the values with enough seeds, slope numbers, why not measured)."""
    t = censored_steps(table, key)
    seeds = t.groupby(key)["seed"].nunique()
    t = t[t[key].isin(seeds[seeds >= MIN_SEEDS].index)]
    name = key.split(".")[-1]
    values = t[key].nunique()
    why = not_measured(values, need, what=f"{name} values with >= {MIN_SEEDS} seeds")
    numbers = {"values": sorted(t[key].unique().tolist()), "runs": len(t),
               "censored": int(t["censored"].sum())}
    if why is None:
        worst = t.groupby(key)["censored"].sum().max() if len(t) else 0
        if worst * 2 > MIN_SEEDS:   # a value whose seeds mostly did not grok
            why = f"most seeds of some {name} value did not grok within the budget"
    if why is None:
        s, lo, hi = slope_interval(t[key], t["step"])
        numbers.update(slope=s, lo=lo, hi=hi)
    return t, numbers, why


def phi_verdict(table: pd.DataFrame, key: str = "data.phi") -> tuple:
    """``table``: one row per run with ``key``, seed, grokked_step (None: censored), budget."""
    _, numbers, why = _slope_numbers(table, key, MIN_VALUES)
    if why:
        return NOT_MEASURED, why, numbers
    s, lo, hi = numbers["slope"], numbers["lo"], numbers["hi"]
    said = f"slope {s:.2f} (95 % [{lo:.2f}, {hi:.2f}])"
    if hi < 0:
        return REPLICATES, said + ": more phi groks sooner", numbers
    if lo > -SLOPE_X:
        return NOT_REPLICATED, said + ": the steps do not follow phi", numbers
    return NOT_MEASURED, said + ": the seeds disagree too much to say", numbers


def size_verdict(table: pd.DataFrame, key: str = "data.n_entities") -> tuple:
    _, numbers, why = _slope_numbers(table, key, MIN_SIZES)
    if why:
        return NOT_MEASURED, why, numbers
    s, lo, hi = numbers["slope"], numbers["lo"], numbers["hi"]
    said = f"slope {s:.2f} (95 % [{lo:.2f}, {hi:.2f}])"
    if lo > 0 or hi < 0:
        return NOT_REPLICATED, said + ": the steps follow the graph's size", numbers
    if -SLOPE_X < lo and hi < SLOPE_X:
        return REPLICATES, said + ": the size does not move the steps", numbers
    return NOT_MEASURED, said + ": too wide to exclude a 2x effect", numbers
