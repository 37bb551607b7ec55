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

import numpy as np
import pandas as pd
import torch

from .definitions import (GROKKED_AT, GROKKED_SPLIT, MEMORIZED_AT, NOT_MEASURED,
                          NOT_REPLICATED, OOD_SPLIT, PARTLY, REPLICATES, wilson)

BEFORE_AT = 0.2       # held-out ID accuracy at the memorized step that counts as "not yet"
MIN_VALUES = 4        # phi values a trend needs
MIN_SIZES = 3         # graph sizes a comparison needs
MIN_SEEDS = 2         # seeds per value, for a spread
SEED_SHARE = 0.5      # share of the other training seeds that must grok as the subject did

RULE_TEXT = {
    "wang_grokking": (
        f"for one run: held-out ID accuracy <= {BEFORE_AT} when train_inferred first reaches "
        f"{MEMORIZED_AT}, and {GROKKED_AT} later; already above {BEFORE_AT} (but below "
        f"{GROKKED_AT}) at that step is partly; >= {GROKKED_AT} there (no wait at all) does "
        f"not replicate; never memorized or never {GROKKED_AT} within the budget is not "
        f"measured. The subject's recipe was chosen on its own training seed, so the rule "
        f"also reads the same config under other training seeds: replicates if the subject "
        f"and at least {SEED_SHARE:.0%} of the other seeds do; partly if the subject does "
        f"and fewer of the others; not measured if no other seed was trained; otherwise the "
        f"subject's own class."),
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


# ---------------------------------------------------------------- the second hop, fact by fact
# Wang et al. explain the OOD failure by where the second hop is stored: in the upper layers,
# learned only from two-hop training facts, so a fact never seen *as a second hop* cannot be
# used as one. That predicts more: a held-out ID query should be answered more often the more
# two-hop training facts share its second hop (b, r2). A model that reused the atomic fact
# itself for the second hop would not care (and would answer OOD queries too).
EXPOSURE_BINS = ((0, 0), (1, 1), (2, 2), (3, 4), (5, None))
RISES_FROM, RISES_TO = "1", ">= 5"   # the exposure buckets ``exposure_rises`` compares


def _bin_label(lo, hi) -> str:
    return f">= {lo}" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")


def hop2_exposure(ds, queries: dict) -> np.ndarray:
    """For each two-hop query, how many two-hop training facts have its second hop (b, r2)
    as theirs. Its mean over the ID atomic facts is phi (each of the phi x ID-atomic
    training two-hop facts has one second hop); an OOD query's is 0 by construction."""
    tr = ds.train
    two = tr["r2"] >= 0
    seen = pd.Series(1, index=pd.MultiIndex.from_arrays([tr["b"][two], tr["r2"][two]]))
    seen = seen.groupby(level=[0, 1]).sum()
    wanted = pd.MultiIndex.from_arrays([queries["b"], queries["r2"]])
    return seen.reindex(wanted, fill_value=0).to_numpy()


@torch.no_grad()
def answers_correct(model, ds, queries: dict, chunk: int = 4096) -> np.ndarray:
    """Whether ``model`` answers each query of ``queries`` with its tail t."""
    model.eval()
    x, pos, y = ds.tensors(queries)
    out = [model(x[i:i + chunk], pos[i:i + chunk]).argmax(-1) == y[i:i + chunk]
           for i in range(0, len(y), chunk)]
    return torch.cat(out).numpy() if out else np.zeros(0, bool)


def accuracy_by_exposure(model, ds, splits=(GROKKED_SPLIT, OOD_SPLIT)) -> pd.DataFrame:
    """Accuracy on two-hop probe sets by ``hop2_exposure`` bucket: split, exposure,
    queries, accuracy and its 95 % Wilson interval (lo, hi). Empty buckets are left out."""
    rows = []
    for split in splits:
        q = ds.probes.get(split)
        if q is None or not len(q["h"]):
            continue
        n = hop2_exposure(ds, q)
        ok = answers_correct(model, ds, q)
        for lo, hi in EXPOSURE_BINS:
            sel = (n >= lo) & (n <= (n.max() if hi is None else hi))
            k = int(sel.sum())
            if k:
                acc = float(ok[sel].mean())
                rows.append({"split": split, "exposure": _bin_label(lo, hi), "queries": k,
                             "accuracy": acc, **dict(zip(("lo", "hi"), wilson(acc, k)))})
    return pd.DataFrame(rows)


def exposure_rises(table: pd.DataFrame) -> bool | None:
    """Whether held-out ID accuracy at exposure ``RISES_TO`` is above that at
    ``RISES_FROM`` beyond both 95 % intervals (None when either bucket has no queries)."""
    t = table[table["split"] == GROKKED_SPLIT].set_index("exposure")
    if RISES_FROM not in t.index or RISES_TO not in t.index:
        return None
    return bool(t.loc[RISES_TO, "lo"] > t.loc[RISES_FROM, "hi"])
