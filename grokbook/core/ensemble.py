"""K models of one shape as one network: every weight gets a leading member axis.

``stack_models([m_0, ..., m_{K-1}])`` copies the first model and replaces each
``nn.Linear``, ``nn.Embedding`` and ``nn.LayerNorm`` with a stacked twin holding all K
members' weights: ``(K, out, in)`` and ``(K, 1, out)`` for a linear layer, ``(K, V, C)``
for an embedding, ``(K, C)`` for a norm. The model's own code then runs unchanged on a
batch of ``K * B`` rows, member-major: a stacked layer views its input as ``(K, B..., in)``
and multiplies member by member with one batched matmul (``torch.baddbmm``), while
everything without weights (attention over 3 tokens, GELU, RMSNorm, residual sums) is
per-row already. Gradients land in the stacked weights, member by member.

Why not ``torch.func.vmap``: its per-operator batching costs about as much as the small
matmuls of these models; folding the members into the batch dimension costs nothing.

The contract, checked by the tests: with one thread, member k's numbers do not depend on
K or on the other members (a batched matmul computes each member's slice exactly as it
would alone), so a run trained in a group is bitwise the run trained alone (K = 1).
Parameter names are the solo model's: ``member_state(stacked, k)`` is a state dict that
``build_model(cfg, vocab).load_state_dict`` accepts.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class StackedLinear(nn.Module):
    def __init__(self, layers: list):
        super().__init__()
        self.k = len(layers)
        self.weight = nn.Parameter(torch.stack([l.weight.detach() for l in layers]))
        self.bias = (nn.Parameter(torch.stack([l.bias.detach() for l in layers]).unsqueeze(1))
                     if layers[0].bias is not None else None)

    def forward(self, x):                                     # (K*B, ..., in)
        if self.k == 1:  # bitwise the batched product below (checked), without its reshapes
            return F.linear(x, self.weight[0], None if self.bias is None else self.bias[0, 0])
        shape = x.shape
        xk = x.reshape(self.k, -1, shape[-1])                 # (K, B*..., in)
        w = self.weight.transpose(1, 2)                       # (K, in, out)
        y = torch.baddbmm(self.bias, xk, w) if self.bias is not None else torch.bmm(xk, w)
        return y.reshape(*shape[:-1], y.shape[-1])


class StackedEmbedding(nn.Module):
    def __init__(self, layers: list):
        super().__init__()
        self.k, self.n = len(layers), layers[0].num_embeddings
        self.weight = nn.Parameter(torch.stack([l.weight.detach() for l in layers]))

    def forward(self, idx):
        """(K*B, T) member-major -> (K*B, T, C); a (T,) index (positions) -> (K, T, C)."""
        if self.k == 1 and idx.dim() > 1:
            return F.embedding(idx, self.weight[0])
        table = self.weight.reshape(-1, self.weight.shape[-1])   # (K*V, C)
        if idx.dim() == 1:
            offset = torch.arange(self.k, device=idx.device)[:, None] * self.n
            return F.embedding(idx[None, :] + offset, table)
        offset = torch.arange(self.k, device=idx.device).repeat_interleave(
            idx.shape[0] // self.k) * self.n
        return F.embedding(idx + offset.view(-1, *([1] * (idx.dim() - 1))), table)


class StackedLayerNorm(nn.Module):
    def __init__(self, layers: list):
        super().__init__()
        self.k, self.eps = len(layers), layers[0].eps
        self.shape = tuple(layers[0].normalized_shape)
        self.weight = nn.Parameter(torch.stack([l.weight.detach() for l in layers]))
        self.bias = nn.Parameter(torch.stack([l.bias.detach() for l in layers]))

    def forward(self, x):                                     # (K*B, ..., C)
        # the fused norm member by member: row-wise, so each member's rows are normalised
        # exactly as they would be alone
        if x.is_cuda and self.k > 1:    # one kernel for all members (not bitwise: GPU only)
            return stacked_layer_norm(x, self.weight, self.bias, self.eps)
        parts = x.chunk(self.k)
        return torch.cat([F.layer_norm(p, self.shape, self.weight[k], self.bias[k], self.eps)
                          for k, p in enumerate(parts)]) if self.k > 1 else \
            F.layer_norm(x, self.shape, self.weight[0], self.bias[0], self.eps)


def stacked_layer_norm(x, weight, bias, eps: float):
    """Layer norm of K members' rows (K*B, ..., C) member-major, each with its own (K, C)
    weight and bias, in a few kernels whatever K is (equal to the member-by-member norm up
    to rounding)."""
    k, c = weight.shape
    y = F.layer_norm(x, (c,), None, None, eps).reshape(k, -1, c)
    return torch.addcmul(bias[:, None], y, weight[:, None]).reshape(x.shape)


_STACKED = {nn.Linear: StackedLinear, nn.Embedding: StackedEmbedding,
            nn.LayerNorm: StackedLayerNorm}


def stack_models(models: list) -> nn.Module:
    """One network holding ``models`` (same class and shape) along a member axis."""
    k = len(models)
    out = copy.deepcopy(models[0])
    out.n_members = k
    names = [n for n, m in models[0].named_modules() if type(m) in _STACKED]
    subs = {}
    for name in names:
        layers = [m.get_submodule(name) for m in models]
        subs[name] = _STACKED[type(layers[0])](layers)
        parent, _, leaf = name.rpartition(".")
        setattr(out.get_submodule(parent) if parent else out, leaf, subs[name])
    # weights the solo model ties (the unembedding = the token embedding) stay tied
    first = dict(models[0].named_parameters(remove_duplicate=False))
    for pname, p in first.items():
        owner, _, leaf = pname.rpartition(".")
        source = next((n for n, q in first.items() if q is p), pname)
        if source != pname and owner in subs:
            src_owner, _, src_leaf = source.rpartition(".")
            setattr(subs[owner], leaf, getattr(subs[src_owner], src_leaf))
    out.solo_dims = {n: p.dim() - 1 - (1 if n.endswith("bias") and isinstance(
        out.get_submodule(n.rpartition(".")[0]), StackedLinear) else 0)
        for n, p in out.named_parameters()}
    return out


def _solo(name: str, tensor: torch.Tensor, k: int, stacked: nn.Module) -> torch.Tensor:
    owner = stacked.get_submodule(name.rpartition(".")[0])
    if isinstance(owner, StackedLinear) and name.endswith("bias"):
        return tensor[k, 0]
    return tensor[k]


def member_state(stacked: nn.Module, k: int) -> dict:
    """Member k's weights as the solo model's state dict (buffers shared by all members)."""
    out = {}
    for name, t in stacked.state_dict(keep_vars=False).items():
        owner = stacked.get_submodule(name.rpartition(".")[0]) if "." in name else stacked
        is_param = type(owner) in _STACKED.values()
        out[name] = (_solo(name, t, k, stacked) if is_param else t).detach().clone()
    return out


@torch.no_grad()
def load_member(stacked: nn.Module, k: int, state: dict) -> None:
    """Put a solo state dict into member k (fine-tuning starts, resuming a member)."""
    own = stacked.state_dict(keep_vars=True)
    for name, value in state.items():
        target = own[name]
        owner = stacked.get_submodule(name.rpartition(".")[0]) if "." in name else stacked
        if type(owner) in _STACKED.values():
            _solo(name, target, k, stacked).copy_(value)
        else:
            target.copy_(value)
