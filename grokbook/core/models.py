"""Models written for reading, each exposing its residual stream by stable names.

Every model here has the same small analysis interface, so the logit lens and causal
tracing need no model-specific code:

- ``stage_names``: the places where the residual stream can be read or patched,
  e.g. ``embed``, ``resid_post.L0`` ... (``resid_post.P1.L3`` when blocks loop).
- ``run_with_cache(idx)`` -> (logits (B, T, V), {stage name: (B, T, C)}).
- ``run_from(stage, x)`` -> the final residual (B, T, C), resuming after ``stage``
  from the state ``x``: patching a state is ``x = cache[s].clone(); x[:, p] = ...``.
- ``unembed(x)`` -> logits through the final norm and the unembedding.

Optimizer decay rule: every 2-D parameter decays, biases and norms don't.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 3  # <e_h><r1><r2>; atomic queries are padded: <e_h><r><pad>


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x):                                     # (B, T, C)
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for z in (q, k, v))                        # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, d_model: int, dropout: float, expansion: int = 4):
        super().__init__()
        self.fc = nn.Linear(d_model, expansion * d_model)
        self.proj = nn.Linear(expansion * d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):                                     # (B, T, C)
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, dropout)
        self.mlp = MLP(d_model, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """GPT-2-style decoder; with ``n_loops > 1`` the same blocks run again (Wang's
    parameter-sharing variant)."""

    def __init__(self, vocab_size: int, n_layer: int, d_model: int, n_head: int,
                 n_loops: int = 1, dropout: float = 0.0, tie_embeddings: bool = True):
        super().__init__()
        self.vocab_size, self.n_layer, self.n_loops = vocab_size, n_layer, n_loops
        self.d_model, self.n_head = d_model, n_head
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(SEQ_LEN, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_embeddings:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer * n_loops))
        if n_loops == 1:
            self.stage_names = ["embed"] + [f"resid_post.L{i}" for i in range(n_layer)]
        else:
            self.stage_names = ["embed"] + [f"resid_post.P{p}.L{i}" for p in range(n_loops)
                                            for i in range(n_layer)]

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def embed(self, idx):                                     # (B, T) -> (B, T, C)
        T = idx.shape[1]
        tok = self.tok_emb(idx)
        pos = self.pos_emb(torch.arange(T, device=idx.device))  # (T, C)
        if pos.dim() == 3:  # a stacked ensemble (core.ensemble): (K, T, C), one per member
            return self.drop((tok.unflatten(0, (pos.shape[0], -1)) + pos[:, None]).flatten(0, 1))
        return self.drop(tok + pos)

    def _schedule(self):
        return [self.blocks[i] for _ in range(self.n_loops) for i in range(self.n_layer)]

    def run_from(self, stage: int | str, x):
        """Resume the residual stream after ``stage`` (index or name) from state ``x``."""
        s = self.stage_names.index(stage) if isinstance(stage, str) else stage
        for block in self._schedule()[s:]:
            x = block(x)
        return x

    def unembed(self, x):                                     # (..., C) -> (..., V)
        return self.head(self.ln_f(x))

    def forward(self, idx, pos=None):
        """Logits at the answer positions ``pos`` (B, V), or at every position (B, T, V)."""
        x = self.run_from(0, self.embed(idx))
        if pos is not None:
            x = x[torch.arange(x.shape[0], device=x.device), pos]  # (B, C)
        return self.unembed(x)

    def run_with_cache(self, idx):
        x = self.embed(idx)
        cache = {"embed": x}
        for name, block in zip(self.stage_names[1:], self._schedule()):
            x = block(x)
            cache[name] = x
        return self.unembed(x), cache

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings else n - self.tok_emb.weight.numel() - self.pos_emb.weight.numel()

    seq_len = SEQ_LEN

    def flops_per_step(self, batch_size: int) -> float:
        """Training FLOPs of one optimizer step on ``batch_size`` queries."""
        return self.flops_per_token() * self.seq_len * batch_size

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 x non-embedding params + attention + unembedding."""
        T, L = SEQ_LEN, self.n_layer * self.n_loops
        body = sum(p.numel() for b in self.blocks for p in b.parameters()) * self.n_loops
        return 6 * body + 6 * L * T * self.d_model + 6 * self.d_model * self.vocab_size
