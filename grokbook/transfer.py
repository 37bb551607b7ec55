"""New knowledge after grokking: the transfer datasets (fine-tuning sets and probes)."""
from __future__ import annotations

from .data import build_dataset


def dataset_for(cfg, store=None):
    """The dataset a run trains on: its graph's, or a transfer set built from its parent's."""
    if cfg.finetune:
        raise NotImplementedError("transfer sets: see grokbook.transfer (issue 6)")
    return build_dataset(cfg.data, cfg.seed)
