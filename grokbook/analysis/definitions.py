"""Every threshold and rule the book's measurements and verdicts share, defined once.

A run has *memorized* when its training two-hop facts are answered (``train_inferred``
accuracy >= ``MEMORIZED_AT``) and has *grokked* when held-out ID two-hop queries are
(``test_inferred_iid`` >= ``GROKKED_AT``). A *non-grokked* checkpoint is memorized but
not grokked. Chapters, the scorecard and the command line import these names; nobody
types 0.99 or 0.9 again.
"""
from __future__ import annotations

import math

import pandas as pd

# the accuracy thresholds the trainer's stop rules read live in core
from ..core.config import (FITTED_AT, GROKKED_AT, GROKKED_SPLIT, MEMORIZED_AT,  # noqa: F401
                           MEMORIZED_SPLIT)

HALFWAY_AT = 0.5               # a curve's midpoint, for crossing steps
OOD_AT = 0.5                   # OOD two-hop accuracy that counts as "composes OOD"
OOD_SPLIT = "test_inferred_ood"

R1_POSITION = 1                # where Wang et al. read the bridge entity: the r1 token
BRIDGE_READABLE = 0.5          # the strict bridge rule is read only where, at its stage, it
                               # decodes b for this share of compositions the model answers

# The classes of every verdict in the book. "not measured" means the experiment could not
# have seen the phenomenon (too short, too few queries or seeds, a control that failed).
REPLICATES, PARTLY, NOT_REPLICATED, NOT_MEASURED = (
    "replicates", "partly", "does not replicate", "not measured")
VERDICTS = (REPLICATES, PARTLY, NOT_REPLICATED, NOT_MEASURED)


# ---------------------------------------------------------------- steps of a metrics table
def first_step(acc: pd.DataFrame, split: str, threshold: float):
    """First evaluated step where ``split`` accuracy reaches ``threshold`` (None if never)."""
    if split not in acc:
        return None
    hit = acc.index[acc[split] >= threshold]
    return int(hit[0]) if len(hit) else None


def memorized_step(acc: pd.DataFrame):
    return first_step(acc, MEMORIZED_SPLIT, MEMORIZED_AT)


def fitted_step(acc: pd.DataFrame):
    """The study's reference step (its tables' "train acc > 0.9"): chapter 5 reads every
    crossing as a multiple of it, as the study's numbers are."""
    return first_step(acc, MEMORIZED_SPLIT, FITTED_AT)


def grokked_step(acc: pd.DataFrame):
    return first_step(acc, GROKKED_SPLIT, GROKKED_AT)


RISING_BY = 0.05        # a curve below its threshold that gained this much over the last
RISING_OVER = 0.25      # quarter of the run was cut off while rising: censored, not settled


def still_rising(series: pd.Series, threshold: float) -> bool:
    """Whether a curve (index: step) ended below ``threshold`` after gaining at least
    ``RISING_BY`` over the last ``RISING_OVER`` of the run: cut off, not settled."""
    s = series.dropna().sort_index()
    if len(s) < 2 or s.iloc[-1] >= threshold:
        return False
    cut = s.index[-1] - RISING_OVER * (s.index[-1] - s.index[0])
    return bool(s.iloc[-1] - s[s.index <= cut].iloc[-1] >= RISING_BY)


def heldout_at(acc: pd.DataFrame, step):
    """Held-out ID accuracy at an evaluated step (None when the step is None)."""
    if step is None or GROKKED_SPLIT not in acc:
        return None
    return round(float(acc.loc[step, GROKKED_SPLIT]), 4)


def run_summary(run) -> dict:
    """The run's own summary plus its milestones: the command line's JSON line."""
    acc = run.accuracy()
    mem = memorized_step(acc)
    return {**run.summary(), "memorized_step": mem, "grokked_step": grokked_step(acc),
            "heldout_at_memorized": heldout_at(acc, mem)}


# ---------------------------------------------------------------- checkpoints
def checkpoint_accuracy(run) -> pd.DataFrame:
    """Probe accuracies at each stored checkpoint (the last evaluation at or before it)."""
    acc = run.accuracy().sort_index()
    rows = acc.reindex(run.checkpoints, method="ffill")
    rows.index.name = "step"
    return rows


def _fitted(a: pd.DataFrame) -> pd.Series:
    return a[MEMORIZED_SPLIT] >= MEMORIZED_AT


def non_grokked_checkpoint(run):
    """The earliest checkpoint that has memorized but not grokked (None if absent): of the
    memorized-not-grokked checkpoints, the one whose held-out accuracy had least time to
    rise. Chapters print its held-out accuracy beside it."""
    a = checkpoint_accuracy(run)
    if MEMORIZED_SPLIT not in a or GROKKED_SPLIT not in a:
        return None
    ok = a[_fitted(a) & (a[GROKKED_SPLIT] < GROKKED_AT)]
    return int(ok.index[0]) if len(ok) else None


def grokked_checkpoint(run):
    """The latest checkpoint that has memorized and grokked (None if absent)."""
    a = checkpoint_accuracy(run)
    if MEMORIZED_SPLIT not in a or GROKKED_SPLIT not in a:
        return None
    ok = a[_fitted(a) & (a[GROKKED_SPLIT] >= GROKKED_AT)]
    return int(ok.index[-1]) if len(ok) else None


def json_ready(x):
    """Evidence as plain JSON values: tables as records, NaN as None, floats rounded to 4
    places; "tables" entries (the rows behind a figure) are left out."""
    if isinstance(x, pd.DataFrame):
        return json_ready(x.to_dict("records"))
    if isinstance(x, dict):
        return {str(k): json_ready(v) for k, v in x.items() if k != "tables"}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()                     # numpy and pandas scalars
    if isinstance(x, float):
        return None if not math.isfinite(x) else round(x, 4)
    return x


def wilson(p: float, n: int, z: float = 1.96) -> tuple:
    """95 % Wilson score interval (lo, hi) of a rate ``p`` measured on ``n`` queries
    ((nan, nan) without queries)."""
    if not n or p != p:
        return (math.nan, math.nan)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))
