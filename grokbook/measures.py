"""Grokking measures from a run's metrics: when it memorized, when it generalized,
how long it waited, and the compute each took."""
from __future__ import annotations

import math

import pandas as pd


def first_step(acc: pd.DataFrame, split: str, threshold: float):
    """First evaluated step where ``split`` accuracy reaches ``threshold`` (None if never)."""
    if split not in acc:
        return None
    hit = acc.index[acc[split] >= threshold]
    return int(hit[0]) if len(hit) else None


def grokking_measures(run, memorized_at: float = 0.99, grokked_at: float = 0.9,
                      memorized_split: str = "train_inferred",
                      grokked_split: str = "test_inferred_iid") -> dict:
    """Memorized step, grokked step, the delay, and the compute spent to reach each."""
    acc = run.accuracy()
    mem = first_step(acc, memorized_split, memorized_at)
    grok = first_step(acc, grokked_split, grokked_at)
    flops_per_step = run.info.get("flops_per_step") or flops_per_step_of(run)
    batch = run.config.train.batch_size
    wall = run.timeline.set_index("step")["wall_seconds"]

    def cost(step):
        if step is None:
            return dict(steps=None, examples=None, flops=None, seconds=None)
        sec = float(wall.loc[step]) if step in wall.index else None
        return dict(steps=step, examples=step * batch, flops=step * flops_per_step, seconds=sec)

    out = {"run": run.id, "memorized_step": mem, "grokked_step": grok,
           "delay_steps": (grok - mem) if mem is not None and grok is not None else None,
           "delay_ratio": (grok / mem) if mem and grok is not None else None,
           "final_ood": float(acc["test_inferred_ood"].iloc[-1]) if "test_inferred_ood" in acc
           else math.nan}
    for prefix, step in (("memorize", mem), ("grok", grok)):
        out.update({f"{prefix}_{k}": v for k, v in cost(step).items()})
    return out


def flops_per_step_of(run) -> float:
    """Estimated training FLOPs of one step: per-token FLOPs x tokens in a batch."""
    from .models import SEQ_LEN
    model = run.load_model(0)
    per_token = model.flops_per_token() if hasattr(model, "flops_per_token") else 0.0
    return per_token * SEQ_LEN * run.config.train.batch_size


def grokking_table(runs, **thresholds) -> pd.DataFrame:
    """``grokking_measures`` of several runs, one row each (thresholds as keywords)."""
    return pd.DataFrame([grokking_measures(r, **thresholds) for r in runs])
