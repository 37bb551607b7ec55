"""Wang et al.'s three findings as rules that can come out either way.

Each rule takes measured numbers (never end values of runs stopped early) and returns
``(verdict, why)``; its text (``RULE_TEXT``) is generated from the same thresholds. A run
that did not reach a milestone within its budget is *censored*: its step is "> budget",
a lower bound, never a missing value and never a refutation.

- **grokking**: held-out ID accuracy is at most ``BEFORE_AT`` when the training facts are
  memorized and reaches ``GROKKED_AT`` later.
- **speed follows phi**: over at least ``MIN_VALUES`` values of phi with at least
  ``MIN_SEEDS`` seeds each, the mean grokked step falls strictly as phi rises, and the
  fall is beyond the seed spread (the lowest phi's fastest seed is slower than the
  highest phi's slowest seed).
- **not the graph size**: over at least ``MIN_SIZES`` graph sizes (``MIN_SEEDS`` seeds
  each, fixed phi) the mean grokked steps differ by no more than the largest seed spread.
"""
from __future__ import annotations

import pandas as pd

from .definitions import (GROKKED_AT, MEMORIZED_AT, NOT_MEASURED, NOT_REPLICATED, PARTLY,
                          REPLICATES)

BEFORE_AT = 0.2       # held-out ID accuracy at the memorized step that counts as "not yet"
MIN_VALUES = 4        # phi values a trend needs
MIN_SIZES = 3         # graph sizes a comparison needs
MIN_SEEDS = 2         # seeds per value, for a spread
SEED_SHARE = 0.5      # share of the other training seeds that must grok as the subject did

RULE_TEXT = {
    "wang_grokking": (
        f"for one run: replicates if held-out ID accuracy is <= {BEFORE_AT} when "
        f"train_inferred first reaches {MEMORIZED_AT} and reaches {GROKKED_AT} later; partly "
        f"if it is already above {BEFORE_AT} (but below {GROKKED_AT}) at that step; does not "
        f"replicate if it is >= {GROKKED_AT} there (no wait at all); not measured if the run "
        f"never memorized or never reached {GROKKED_AT} within its budget. The subject's "
        f"recipe was chosen on its own training seed, so when the subject replicates the rule "
        f"also reads the same config under other training seeds: replicates if at least "
        f"{SEED_SHARE:.0%} of them replicate too; partly if fewer do (a seed that did not "
        f"grok within the budget is censored: it lowers the verdict to partly, never to does "
        f"not replicate); not measured if no other seed was trained. A subject that does not "
        f"replicate keeps its own class."),
    "wang_phi": (
        f"replicates if, over >= {MIN_VALUES} phi values with >= {MIN_SEEDS} seeds each, the "
        f"mean step to held-out {GROKKED_AT} falls strictly as phi rises and the lowest phi's "
        f"fastest seed is slower than the highest phi's slowest (beyond the seed spread); "
        f"partly if the rank correlation is negative without that; does not replicate if it "
        f"is not negative; not measured with fewer values or seeds, or fewer than two phi "
        f"values whose seeds all grokked. Censored runs count as their budget (a lower bound)."),
    "wang_size": (
        f"replicates if, over >= {MIN_SIZES} graph sizes with >= {MIN_SEEDS} seeds each at one "
        f"phi, the mean steps to held-out {GROKKED_AT} differ by no more than the largest seed "
        f"spread; does not replicate if they differ by more and change monotonically with "
        f"size; partly if they differ by more without a monotone trend; not measured with "
        f"fewer sizes or seeds, or when a run did not grok within its budget."),
}


def grokking_verdict(memorized, grokked, heldout_at_memorized) -> tuple:
    if memorized is None:
        return NOT_MEASURED, "the run never memorized its training facts within its budget"
    if grokked is None:
        return NOT_MEASURED, f"held-out ID never reached {GROKKED_AT} within the budget"
    if heldout_at_memorized >= GROKKED_AT:
        return NOT_REPLICATED, "held-out queries were answered as soon as training ones"
    if heldout_at_memorized <= BEFORE_AT:
        return REPLICATES, (f"held-out {heldout_at_memorized:.2f} at step {memorized}, "
                            f">= {GROKKED_AT} at step {grokked}")
    return PARTLY, (f"held-out already {heldout_at_memorized:.2f} at the memorized step "
                    f"{memorized}")


def seeded_grokking_verdict(subject: tuple, others: list) -> tuple:
    """``grokking_verdict`` of the subject run, tested on the same config under other
    training seeds (each a (memorized, grokked, heldout_at_memorized) tuple): the recipe
    was chosen on the subject's seed, so only the others can show its grokking is not
    that seed's luck."""
    v, why = grokking_verdict(*subject)
    if v != REPLICATES:
        return v, why
    if not others:
        return NOT_MEASURED, (f"{why}; no other training seed was trained, and the recipe "
                              f"was chosen on this one")
    k = sum(grokking_verdict(*o)[0] == REPLICATES for o in others)
    if k >= SEED_SHARE * len(others):
        return REPLICATES, f"{why}; so do {k} of {len(others)} other training seeds"
    return PARTLY, (f"{why}, but only {k} of {len(others)} other training seeds wait and "
                    f"grok within the budget (the recipe was chosen on this seed)")


def censored_steps(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """``table`` rows (key, seed, grokked_step, budget) -> key, seed, step (the grokked step,
    or the budget when censored), censored."""
    t = table.copy()
    t["censored"] = t["grokked_step"].isna()
    t["step"] = t["grokked_step"].where(~t["censored"], t["budget"]).astype(float)
    return t[[key, "seed", "step", "censored"]]


def _spearman(x, y) -> float:
    # the Pearson correlation of the ranks (pandas' own spearman needs scipy)
    return pd.Series(list(x), dtype=float).rank().corr(pd.Series(list(y), dtype=float).rank())


def _seeded(table: pd.DataFrame, key: str, need: int):
    """(censored steps of the values of ``key`` with enough seeds, or None; why not)."""
    t = censored_steps(table, key)
    seeds = t.groupby(key)["seed"].nunique()
    values = seeds[seeds >= MIN_SEEDS].index
    if len(values) < need:
        name = key.split(".")[-1]
        return None, (f"{len(values)} {name} value(s) with >= {MIN_SEEDS} seeds; the rule "
                      f"needs {need}")
    return t[t[key].isin(values)], ""


def phi_verdict(table: pd.DataFrame, key: str = "data.phi") -> tuple:
    """``table``: one row per run with ``key``, seed, grokked_step (None: censored), budget."""
    t, why = _seeded(table, key, MIN_VALUES)
    if t is None:
        return NOT_MEASURED, why
    g = t.groupby(key)
    if int((~g["censored"].any()).sum()) < 2:
        return NOT_MEASURED, "fewer than two phi values grokked in every seed within the budget"
    means = g["step"].mean().sort_index()
    rho = _spearman(means.index, means.values)
    strict = all(b < a for a, b in zip(means.values, means.values[1:]))
    lo, hi = means.index[0], means.index[-1]
    beyond = g["step"].min()[lo] > g["step"].max()[hi]
    if strict and beyond:
        return REPLICATES, (f"mean steps fall strictly over {len(means)} phi values, beyond "
                            "the seed spread")
    if rho < 0:
        return PARTLY, f"rank correlation {rho:.2f}; " + (
            "not strictly falling" if not strict else "within the seed spread")
    return NOT_REPLICATED, f"rank correlation {rho:.2f}: larger phi does not grok sooner"


def size_verdict(table: pd.DataFrame, key: str = "data.n_entities") -> tuple:
    t, why = _seeded(table, key, MIN_SIZES)
    if t is None:
        return NOT_MEASURED, why
    if t["censored"].any():
        return NOT_MEASURED, "a run did not grok within its budget: the sizes cannot be compared"
    g = t.groupby(key)["step"]
    means = g.mean().sort_index()
    spread = float((g.max() - g.min()).max())
    gap = float(means.max() - means.min())
    if gap <= spread:
        return REPLICATES, f"means differ by {gap:,.0f} steps, within the seed spread {spread:,.0f}"
    diffs = [b - a for a, b in zip(means.values, means.values[1:])]
    monotone = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
    if monotone:
        return NOT_REPLICATED, (f"means change with size by {gap:,.0f} steps, beyond the seed "
                                f"spread {spread:,.0f}")
    return PARTLY, f"means differ by {gap:,.0f} steps (spread {spread:,.0f}) without a trend"
