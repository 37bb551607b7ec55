"""A Tiny-Recursive-Model-style network (Jolicoeur-Martineau 2025, arXiv 2510.04871), the
parameter-sharing model of He et al. (2026), at CPU size.

No attention: a block mixes tokens with an MLP across the sequence axis, then channels
with an MLP, each sub-layer followed by RMSNorm (post-norm), nothing causal. One small
stack of ``n_layer`` blocks (the *net*) is reused everywhere::

    x = embed([h, r1, r2, pad])                      # (B, T=4, C); atomic: [h, r, pad, pad]
    for cycle in range(cycles):                      # only the last cycle gets gradients
        for step in range(inner_steps):
            z_L = net(z_L + z_H + x)
        z_H = net(z_H + z_L)
    logits = head(rmsnorm(z_H))                      # answer at slot pos + 1

The answer is read non-causally at a fixed *answer slot*: slot 2 for atomic queries
(``[h, r, <ans>, pad]``), slot 3 for two-hop ones (``[h, r1, r2, <ans>]``), i.e. slot
``pos + 1`` for the transformer's answer position ``pos`` (1 atomic, 2 two-hop). The
study trains the whole target sequence; we train the answer only, like the transformer.
z_L and z_H start from fixed random vectors (buffers), as in TRM. TRM also carries the
latents across several "deep supervision" steps; one forward pass here is one such step.

**Reading and patching two latents.** The recursion's complete state at any point is the
triple (z_L, z_H, x) -- x is re-injected at every z_L update. A cache entry therefore packs
the triple along the channel axis, *named latent first*: ``embed`` holds
``[x, z_L0, z_H0]``, ``z_L.cycle{c}.step{i}`` holds ``[z_L, z_H, x]`` right after that
update and ``z_H.cycle{c}`` holds ``[z_H, z_L, x]`` (shape (B, T, 3C)). ``unembed`` reads
the first C channels, so the logit lens of a stage is the lens of its named latent.
``run_from(stage, state)`` unpacks the triple and resumes the recursion after that stage,
so patching position p of a stage replaces everything the recursion carries at p (the
analogue of a transformer's residual stream at (layer, p)); patching a state with itself
changes nothing. ``run_from`` returns the final z_H (B, T, C).

Optimizer decay rule (grokbook.core.train.StackedAdamW): every 2-D parameter decays,
norms have no weights here, biases don't.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import MLP

SEQ_LEN = 4  # the transformer's 3 input tokens + 1 answer slot


def rmsnorm(x):
    return F.rms_norm(x, (x.shape[-1],), eps=1e-6)


class TokenMix(MLP):
    """An MLP across the sequence axis, the same for every channel."""

    def __init__(self, seq_len: int, expansion: int):
        super().__init__(seq_len, 0.0, expansion)

    def forward(self, x):                                     # (B, T, C)
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def ChannelMLP(d_model: int, expansion: int) -> MLP:
    """The per-position MLP: the transformer's (``grokbook.models.MLP``), no dropout."""
    return MLP(d_model, 0.0, expansion)


class MixerBlock(nn.Module):
    """Post-norm: x = norm(x + mix(x)), then x = norm(x + mlp(x))."""

    def __init__(self, d_model: int, seq_len: int, expansion: int):
        super().__init__()
        self.mix = TokenMix(seq_len, expansion)
        self.mlp = ChannelMLP(d_model, expansion)

    def forward(self, x):
        x = rmsnorm(x + self.mix(x))
        return rmsnorm(x + self.mlp(x))


class TRM(nn.Module):
    """Tiny recursive model with the analysis interface of grokbook.models.Transformer."""

    def __init__(self, vocab_size: int, d_model: int = 128, n_layer: int = 2,
                 inner_steps: int = 6, cycles: int = 2, expansion: int = 4):
        super().__init__()
        self.vocab_size, self.d_model, self.n_layer = vocab_size, d_model, n_layer
        self.inner_steps, self.cycles, self.expansion = inner_steps, cycles, expansion
        self.pad = vocab_size - 2          # grokbook.data.Vocab: <pad>, </a> come last
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(MixerBlock(d_model, SEQ_LEN, expansion)
                                    for _ in range(n_layer))
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.in_features))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.tok_emb.weight, 0.0, 1.0 / math.sqrt(d_model))
        nn.init.normal_(self.head.weight, 0.0, 0.02)
        g = torch.Generator().manual_seed(0)  # fixed initial latents, as TRM's H_init/L_init
        self.register_buffer("z_L_init", torch.randn(d_model, generator=g))
        self.register_buffer("z_H_init", torch.randn(d_model, generator=g))
        # the schedule of latent updates: ("L", cycle, step) or ("H", cycle, None)
        self.schedule = [(kind, c, i) for c in range(cycles)
                         for kind, i in [("L", i) for i in range(inner_steps)] + [("H", None)]]
        self.stage_names = ["embed"] + [f"z_L.cycle{c}.step{i}" if kind == "L" else
                                        f"z_H.cycle{c}" for kind, c, i in self.schedule]

    # ---------------------------------------------------------------- pieces
    def net(self, x):                                         # (B, T, C) -> (B, T, C)
        for block in self.blocks:
            x = block(x)
        return x

    def embed(self, idx):                                     # (B, 3) -> (B, 4, C)
        if idx.shape[1] == SEQ_LEN - 1:                       # append the answer slot
            idx = torch.cat([idx, torch.full_like(idx[:, :1], self.pad)], 1)
        return self.tok_emb(idx) * math.sqrt(self.d_model)

    def initial_state(self, idx):
        """The packed ``embed`` state [x, z_L, z_H] (B, T, 3C)."""
        x = self.embed(idx)
        return torch.cat([x, self.z_L_init.expand_as(x), self.z_H_init.expand_as(x)], -1)

    def _pack(self, kind, z_L, z_H, x):
        parts = {"E": (x, z_L, z_H), "L": (z_L, z_H, x), "H": (z_H, z_L, x)}[kind]
        return torch.cat(parts, -1)

    def _unpack(self, kind, state):
        a, b, c = state.split(self.d_model, -1)
        return {"E": (b, c, a), "L": (a, b, c), "H": (b, a, c)}[kind]  # (z_L, z_H, x)

    def _recur(self, start: int, z_L, z_H, x, cache=None):
        """Apply the updates schedule[start:]; earlier cycles without gradients in training."""
        truncate = self.training and torch.is_grad_enabled()
        for k in range(start, len(self.schedule)):
            kind, c, _ = self.schedule[k]
            ctx = torch.no_grad() if truncate and c < self.cycles - 1 else contextlib.nullcontext()
            with ctx:
                if kind == "L":
                    z_L = self.net(z_L + z_H + x)
                else:
                    z_H = self.net(z_H + z_L)
            if cache is not None:
                cache[self.stage_names[k + 1]] = self._pack(kind, z_L, z_H, x)
        return z_H

    # ---------------------------------------------------------------- interface
    def _kind(self, s: int) -> str:
        return "E" if s == 0 else self.schedule[s - 1][0]

    def run_from(self, stage: int | str, state):
        """Resume the recursion after ``stage`` (index or name) from its packed state
        (B, T, 3C); returns the final z_H (B, T, C)."""
        s = self.stage_names.index(stage) if isinstance(stage, str) else stage
        z_L, z_H, x = self._unpack(self._kind(s), state)
        return self._recur(s, z_L, z_H, x)

    def unembed(self, x):                                     # (..., C or 3C) -> (..., V)
        return self.head(rmsnorm(x[..., :self.d_model]))

    def forward(self, idx, pos=None):
        """Logits at the answer slots ``pos + 1`` (B, V), or at every slot (B, T, V)."""
        x = self.embed(idx)
        z_H = self._recur(0, self.z_L_init.expand_as(x), self.z_H_init.expand_as(x), x)
        if pos is not None:
            z_H = z_H[torch.arange(z_H.shape[0], device=z_H.device), pos + 1]  # (B, C)
        return self.unembed(z_H)

    def run_with_cache(self, idx):
        state = self.initial_state(idx)
        cache = {"embed": state}
        z_L, z_H, x = self._unpack("E", state)
        z_H = self._recur(0, z_L, z_H, x, cache)
        return self.unembed(z_H), cache

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings else n - self.tok_emb.weight.numel()

    seq_len = SEQ_LEN

    def flops_per_step(self, batch_size: int) -> float:
        """Training FLOPs of one optimizer step on ``batch_size`` queries (4 slots each)."""
        return self.flops_per_token() * self.seq_len * batch_size

    def flops_per_token(self) -> float:
        """Training FLOPs per token: every net pass forward (2N), the last cycle's passes
        backward too (4N), plus the output head (6 C V)."""
        body = sum(p.numel() for b in self.blocks for p in b.mlp.parameters())
        body += sum(p.numel() for b in self.blocks for p in b.mix.parameters()) * self.d_model \
            / SEQ_LEN                                         # token mixing runs per channel
        per_cycle = self.inner_steps + 1
        return 2 * body * per_cycle * self.cycles + 4 * body * per_cycle \
            + 6 * self.d_model * self.vocab_size
