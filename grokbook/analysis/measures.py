"""Grokking measures from a run's metrics: when it memorized, when it generalized,
how long it waited, and the compute each took (thresholds: ``analysis.definitions``)."""
from __future__ import annotations

import math

from ..core.arch import build_model, flops_per_step
from .definitions import (GROKKED_AT, GROKKED_SPLIT, HALFWAY_AT, MEMORIZED_AT, MEMORIZED_SPLIT,
                          OOD_AT, OOD_SPLIT, first_step)

MILESTONES = ((MEMORIZED_SPLIT, MEMORIZED_AT), (GROKKED_SPLIT, GROKKED_AT),
              (GROKKED_SPLIT, HALFWAY_AT), (OOD_SPLIT, OOD_AT))


def milestone_lines(run, levels=MILESTONES) -> str:
    """Lines saying when each probe set first reached each accuracy level (or never)."""
    acc = run.accuracy()
    lines = []
    for split, level in levels:
        step = first_step(acc, split, level)
        when = f"at step {step}" if step is not None else f"never within {run.steps} steps"
        lines.append(f"{split:>18} reaches {level:.0%} {when}")
    return "\n".join(lines)


def grokking_measures(run, memorized_at: float = MEMORIZED_AT, grokked_at: float = GROKKED_AT,
                      memorized_split: str = MEMORIZED_SPLIT,
                      grokked_split: str = GROKKED_SPLIT) -> dict:
    """Memorized step, grokked step, the delay, and the compute spent to reach each."""
    acc = run.accuracy()
    mem = first_step(acc, memorized_split, memorized_at)
    grok = first_step(acc, grokked_split, grokked_at)
    per_step = flops_per_step_of(run)
    batch = run.config.train.batch_size
    wall = run.timeline.set_index("step")["wall_seconds"]

    def cost(step):
        if step is None:
            return dict(steps=None, examples=None, flops=None, seconds=None)
        sec = float(wall.loc[step]) if step in wall.index else None
        return dict(steps=step, examples=step * batch, flops=step * per_step, seconds=sec)

    out = {"run": run.id, "memorized_step": mem, "grokked_step": grok,
           "delay_steps": (grok - mem) if mem is not None and grok is not None else None,
           "delay_ratio": (grok / mem) if mem and grok is not None else None,
           "final_ood": float(acc[OOD_SPLIT].iloc[-1]) if OOD_SPLIT in acc else math.nan}
    for prefix, step in (("memorize", mem), ("grok", grok)):
        out.update({f"{prefix}_{k}": v for k, v in cost(step).items()})
    return out


def flops_per_step_of(run) -> float:
    """Estimated training FLOPs of one step, as the trainer recorded it in ``run.info``
    (runs stored before it did: from the model's shape, no weights loaded)."""
    if run.info.get("flops_per_step"):
        return float(run.info["flops_per_step"])
    return flops_per_step(build_model(run.config, len(run.dataset.vocab)),
                          run.config.train.batch_size)
