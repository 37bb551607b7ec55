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


def crossings(run, levels=(("train_inferred", 0.99), ("test_inferred_iid", 0.9),
                          ("test_inferred_iid", 0.5), ("test_inferred_ood", 0.5))) -> str:
    """Lines saying when each probe set first reached each accuracy level (or never)."""
    acc = run.accuracy()
    lines = []
    for split, level in levels:
        step = first_step(acc, split, level)
        when = f"at step {step}" if step is not None else f"never within {run.steps} steps"
        lines.append(f"{split:>18} reaches {level:.0%} {when}")
    return "\n".join(lines)


def grokking_measures(run, memorized_at: float = 0.99, grokked_at: float = 0.9,
                      memorized_split: str = "train_inferred",
                      grokked_split: str = "test_inferred_iid") -> dict:
    """Memorized step, grokked step, the delay, and the compute spent to reach each."""
    acc = run.accuracy()
    mem = first_step(acc, memorized_split, memorized_at)
    grok = first_step(acc, grokked_split, grokked_at)
    flops_per_step = flops_per_step_of(run)
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
    """Estimated training FLOPs of one step, as the trainer recorded it in ``run.info``
    (runs stored before it did: from the model's shape, no weights loaded)."""
    if run.info.get("flops_per_step"):
        return float(run.info["flops_per_step"])
    from .models import build_model
    return flops_per_step(build_model(run.config, len(run.dataset.vocab)),
                          run.config.train.batch_size)


def flops_per_step(model, batch_size: int) -> float:
    """Per-token FLOPs of the model x tokens in a batch."""
    from .models import SEQ_LEN
    return model.flops_per_token() * SEQ_LEN * batch_size


def grokking_table(runs, **thresholds) -> pd.DataFrame:
    """``grokking_measures`` of several runs, one row each (thresholds as keywords)."""
    return pd.DataFrame([grokking_measures(r, **thresholds) for r in runs])
