"""Which network a config names: ``build_model(cfg, vocab_size)`` for every architecture
(the decoder transformer, looped or not, and the TRM), and the FLOPs of a training step,
which each model knows from its own sequence length."""
from __future__ import annotations

import torch
import torch.nn as nn

from .models import Transformer
from .trm import TRM


def build_model(cfg, vocab_size: int) -> nn.Module:
    m = cfg.model
    if m.arch == "trm":
        model = TRM(vocab_size, d_model=m.d_model, n_layer=m.n_layer,
                    inner_steps=m.trm_inner_steps, cycles=m.trm_cycles,
                    expansion=m.trm_expansion)
    else:
        model = Transformer(vocab_size, m.n_layer, m.d_model, m.n_head, m.n_loops, m.dropout,
                            m.tie_embeddings)
    if m.init_scale != 1.0:
        scale_init(model, m.init_scale)
    return model


@torch.no_grad()
def scale_init(model: nn.Module, scale: float) -> None:
    """Multiply every 2-D weight (matrices and embeddings; a tied one once) by ``scale``:
    the initial weight norm of Omnigrok (Liu et al., arXiv 2210.01117). Biases and norms,
    which weight decay does not touch either, keep their initialisation."""
    for p in model.parameters():        # parameters() yields a tied weight once
        if p.dim() >= 2:
            p.mul_(scale)


def flops_per_step(model: nn.Module, batch_size: int) -> float:
    """Estimated training FLOPs of one step (forward and backward) of ``model``."""
    return model.flops_per_step(batch_size)
