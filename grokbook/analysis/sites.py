"""The one primitive every look inside a model uses: run a batch of queries once with every
named stage state cached, and resume the model from any stage with a state of one's own.

In the spirit of TransformerLens's ``run_with_cache`` / ``run_with_hooks``: every model
of ``core`` names its stages (``stage_names``), returns them from ``run_with_cache`` and
resumes after one of them with ``run_from``. The logit lens reads a cached state through
``unembed``; causal tracing and the interchange interventions put a donor's state at one
(stage, position) and resume. ``Sites`` holds one batch's cache and does both.

- ``two_hop(queries)``: the two-hop rows of a query table;
- ``run_cached(model, tokens)``: (logits (N, T, V), {stage: (N, T, C)}), in chunks;
- ``answer_index(model, tokens, pos, cache)``: the sequence index the answer is read at;
- ``Sites(model, tokens, pos)``: ``stages``, ``state(stage)``, ``resume(stage, x)`` (the
  answer logits (N, V) after running on from ``x``), ``patch(stage, position, donor)``
  (the answer logits with that site's state taken from ``donor``, another ``Sites`` of
  the same shape), ``clean`` (the answer logits of the run itself, recomputed from its
  first stage, as a patched run is).
"""
from __future__ import annotations

import numpy as np
import torch


def two_hop(queries: dict) -> dict:
    """The two-hop rows (``r2 >= 0``) of a query table."""
    keep = np.flatnonzero(np.asarray(queries["r2"]) >= 0)
    return {k: np.asarray(v)[keep] for k, v in queries.items()}


@torch.no_grad()
def run_cached(model, tokens: torch.Tensor, chunk: int = 2048):
    """``run_with_cache`` over chunks: (logits (N, T, V), {stage: (N, T, C)})."""
    logits, caches = [], []
    for s in range(0, len(tokens), chunk):
        lg, cache = model.run_with_cache(tokens[s:s + chunk])
        logits.append(lg.float())
        caches.append({k: v.float() for k, v in cache.items()})
    names = [n for n in model.stage_names if n in caches[0]]
    return torch.cat(logits), {n: torch.cat([c[n] for c in caches]) for n in names}


def answer_index(model, tokens, pos, cache):
    """Where the answer is read in the model's sequence: ``pos`` plus the slots the model
    appends to the 3 input tokens (0 for the transformer; 1 for the recursive model,
    which predicts in an answer slot). A model may say so with ``answer_offset``."""
    T = next(iter(cache.values())).shape[1]
    return pos + getattr(model, "answer_offset", T - tokens.shape[1])


@torch.no_grad()
def resume(model, stage, x, at, chunk: int = 1024) -> torch.Tensor:
    """Answer logits (N, V): ``model`` run on from ``stage`` with state ``x`` (N, T, C),
    read at sequence index ``at`` (N,)."""
    rows = torch.arange(len(x))
    out = []
    for s in range(0, len(x), chunk):
        final = model.run_from(stage, x[s:s + chunk])
        out.append(model.unembed(final[rows[s:s + chunk] - s, at[s:s + chunk]]).float())
    return torch.cat(out) if out else torch.zeros(0)


class Sites:
    """One batch of queries run once through ``model``, every stage state cached."""

    def __init__(self, model, tokens, pos, chunk: int = 1024):
        model.eval()
        self.model, self.chunk = model, chunk
        self.logits, self.cache = run_cached(model, tokens, chunk)
        self.at = answer_index(model, tokens, pos, self.cache)
        self.stages = [s for s in model.stage_names if s in self.cache]

    def __len__(self) -> int:
        return len(self.logits)

    def state(self, stage: str) -> torch.Tensor:
        return self.cache[stage]

    def resume(self, stage: str, x: torch.Tensor) -> torch.Tensor:
        """The answer logits (N, V) after running on from ``stage`` with state ``x``."""
        return resume(self.model, stage, x, self.at, self.chunk)

    @property
    def clean(self) -> torch.Tensor:
        """The run's own answer logits, recomputed from its first stage (as patched runs
        are, so that equal means equal up to the same arithmetic)."""
        first = self.stages[0]
        return self.resume(first, self.cache[first])

    def patch(self, stage: str, position: int, donor: "Sites") -> torch.Tensor:
        """The answer logits with the state at (``stage``, ``position``) taken from
        ``donor`` (row by row)."""
        x = self.cache[stage].clone()
        x[:, position] = donor.cache[stage][:, position]
        return self.resume(stage, x)
