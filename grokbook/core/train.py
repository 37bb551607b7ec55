"""The training loop, for K runs of one shape trained together (K = 1: a run alone).

The K members are one stacked network (``core.ensemble``): each member draws its own
batches from its own dataset with its own generator, has its own learning rate, weight
decay, betas, clipping and EMA, and is evaluated on its own probe sets, all in the same
batched passes. With one thread a member's numbers do not depend on K (see
``core.ensemble``). Batches are drawn by indexing tensors already on the device, the loss
is accumulated on the device, and the host reads it only at evaluations.

Step k means "after k optimizer updates": evaluation and checkpoint at step k happen
before update k + 1. Everything that the next step depends on (weights, optimizer,
both random generators, the running training loss) is in the resume state, so an
interrupted run resumed from a checkpoint ends with the same numbers.
"""
from __future__ import annotations

import copy
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from .arch import build_model
from .config import FITTED_AT, GROKKED_AT, GROKKED_SPLIT, MEMORIZED_SPLIT
from .ensemble import load_member, member_state, stack_models
from .tables import n_rows


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite; the run cannot be completed as configured."""

    def __init__(self, message: str, member: int = 0):
        super().__init__(message)
        self.member = member


def resolve_device(name: str = "auto") -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but no CUDA device is available; "
                         "allowed here: auto, cpu")
    return name


THREADS_ENV = "GROKBOOK_THREADS"


def thread_count(threads: int | None = None) -> int:
    """Threads one training process uses: ``threads``, else ``$GROKBOOK_THREADS``, else 1.

    One by default because two busy threads collapse when any other process shares the
    two cores (15.9 -> 2.8 steps/s measured) while one holds its speed; parallelism comes
    from training several runs at once (stacked groups, worker processes). The run id never
    depends on it; the numbers are bitwise the same for a given thread count."""
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "1")
        try:
            threads = int(raw)
        except ValueError:
            raise ValueError(f"{THREADS_ENV}: {raw!r} is not allowed; allowed: a whole number "
                             f"of threads, 1 or more") from None
    if threads < 1:
        raise ValueError(f"threads: {threads} is not allowed; allowed: 1 or more")
    return threads


def eval_steps(t) -> list[int]:
    """Dense every ``eval_every`` up to ``eval_dense_until``, then log-spaced."""
    dense_end = min(t.eval_dense_until, t.max_steps)
    steps = set(range(0, dense_end + 1, t.eval_every))
    if t.max_steps > dense_end:
        lo, hi = math.log10(max(dense_end, 1)), math.log10(t.max_steps)
        n = max(2, int(math.ceil((hi - lo) * t.eval_per_decade)) + 1)
        steps |= {int(round(10 ** x)) for x in np.linspace(lo, hi, n)}
    steps.add(t.max_steps)
    return sorted(s for s in steps if 0 <= s <= t.max_steps)


def checkpoint_steps(t) -> list[int]:
    return sorted(set(range(0, t.max_steps + 1, t.checkpoint_every)) | {t.max_steps})


def lr_at(step: int, t) -> float:
    """Linear warmup, then constant (Wang's schedule)."""
    return t.lr * min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps else t.lr


FULL = "fp32"  # an autocast setting that means: no autocast, full precision


def autocast_for(device_type: str, dtype=None):
    """bf16 on CUDA; on CPU full precision unless ``dtype`` asks otherwise (the bench);
    ``dtype`` ``FULL``: full precision on either."""
    if dtype == FULL:
        return torch.autocast(device_type, enabled=False)
    if dtype is not None:
        return torch.autocast(device_type, dtype=dtype)
    if device_type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def precision_autocast(precision: str, device: str):
    """The trainer's ``autocast`` for ``train.precision`` (None: the device's default),
    and TF32 matrix products switched on for "tf32" on CUDA (a process-wide setting)."""
    if precision == "tf32" and device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    return {"auto": None, "fp32": FULL, "tf32": FULL, "bf16": torch.bfloat16}[precision]


def training_seed(cfg) -> int:
    """The seed of the model's initialisation and batch order: ``train.init_seed`` when set,
    else the run's seed (which also draws the graph)."""
    return cfg.train.init_seed if cfg.train.init_seed >= 0 else cfg.seed


def group_key(cfg) -> tuple:
    """What K runs must share to train as one stacked network: the model's shape, the
    batch, the schedule, the vocabulary, the device and whether weights are averaged.
    Seeds, data, learning rates, weight decay, betas, warmup and clipping may differ."""
    d, t = cfg.data, cfg.train
    return (tuple(sorted(vars(cfg.model).items())), t.batch_size, t.max_steps, t.eval_every,
            t.eval_dense_until, t.eval_per_decade, t.checkpoint_every, t.device,
            t.ema > 0, d.n_entities, d.n_relations, d.from_json,  # a JSON folder: its own vocab
            t.precision, t.optimizer, t.loss)


class ProbeSets:
    """Every member's probe sets, each member's concatenated and padded to one length, so
    one batched pass per chunk evaluates all members."""

    def __init__(self, datasets, device):
        self.names, xs, poss, ys, segs = [], [], [], [], []
        for ds in datasets:
            names = [n for n in ds.probes if n_rows(ds.probes[n])]
            parts = [ds.tensors(ds.probes[n], device) for n in names]
            self.names.append(names)
            xs.append(torch.cat([p[0] for p in parts]))
            poss.append(torch.cat([p[1] for p in parts]))
            ys.append(torch.cat([p[2] for p in parts]))
            segs.append(torch.cat([torch.full((len(p[0]),), i, device=device)
                                   for i, p in enumerate(parts)]))
        self.n = [len(x) for x in xs]
        top = max(self.n)

        def pad(t):  # repeat rows cyclically; padded rows are never counted
            return t[torch.arange(top, device=t.device) % len(t)] if len(t) < top else t

        self.x = torch.stack([pad(x) for x in xs])            # (K, N, 3)
        self.pos = torch.stack([pad(p) for p in poss])        # (K, N)
        self.y = torch.stack([pad(y) for y in ys])            # (K, N)
        self.seg = segs

    @torch.no_grad()
    def evaluate(self, model, chunk: int = 512, autocast=None) -> list:
        """Per member: {probe name: (loss, accuracy)}.

        ``chunk`` rows per pass on a CPU: each row's numbers do not depend on it, but its
        speed does -- the width-128 TRM evaluates 4,500 queries in 0.34 s in passes of
        512 rows and 0.72 s in one pass of 8,192 (its (rows, 4, 512) activations outgrow
        the caches and fresh pages; ``grokbook bench --profile``). A GPU takes far larger
        passes."""
        was_training = model.training
        model.eval()
        K, N = self.y.shape
        if self.y.device.type == "cuda":
            chunk *= 512
        chunk = max(1, chunk // K)
        correct, losses = [], []
        for s in range(0, N, chunk):
            x = self.x[:, s:s + chunk].reshape(-1, self.x.shape[-1])
            with autocast_for(x.device.type, autocast):
                logits = model(x, self.pos[:, s:s + chunk].reshape(-1)).float()
            y = self.y[:, s:s + chunk].reshape(-1)
            correct.append((logits.argmax(-1) == y).float().view(K, -1))
            losses.append(F.cross_entropy(logits, y, reduction="none").view(K, -1))
        model.train(was_training)
        correct, losses = torch.cat(correct, 1), torch.cat(losses, 1)
        out = []
        for k in range(K):
            n, seg = len(self.names[k]), self.seg[k]
            count = torch.bincount(seg, minlength=n).float()
            acc = torch.bincount(seg, correct[k, :self.n[k]], minlength=n) / count
            loss = torch.bincount(seg, losses[k, :self.n[k]], minlength=n) / count
            acc, loss = acc.tolist(), loss.tolist()
            out.append({name: (loss[i], acc[i]) for i, name in enumerate(self.names[k])})
        return out


class StackedAdamW:
    """AdamW over stacked weights with one learning rate, weight decay and pair of betas per
    member (shape (K, 1, ...) factors). Decoupled weight decay on every weight that is 2-D
    in the solo model; biases and norms don't decay."""

    def __init__(self, model, cfgs, eps: float = 1e-8):
        self.params = dict(model.named_parameters())
        self.decays = {n: model.solo_dims[n] >= 2 for n in self.params}
        self.eps, self.t = eps, 0
        self.k = len(cfgs)
        device = next(iter(self.params.values())).device   # kept there: no copy per step
        col = lambda name: torch.tensor([getattr(c.train, name) for c in cfgs],  # noqa: E731
                                        dtype=torch.float32, device=device)
        self.wd, self.beta1, self.beta2 = col("weight_decay"), col("beta1"), col("beta2")
        self.exp_avg = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in self.params.items()}
        # Grokfast (Lee et al. 2024, arXiv 2405.20233): the slow part of the gradient, an EMA,
        # is added back with a gain; kept only when some member asks for it
        self.gf_alpha, self.gf_lamb = col("grokfast_alpha"), col("grokfast_lamb")
        self.grad_ema = ({n: torch.zeros_like(p) for n, p in self.params.items()}
                         if bool((self.gf_lamb > 0).any()) else None)

    def _view(self, v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (p.dim() - 1)))

    @torch.no_grad()
    def step(self, lrs: torch.Tensor):
        self.t += 1
        bc1 = 1 - self.beta1 ** self.t
        bc2_sqrt = (1 - self.beta2 ** self.t).sqrt()
        step_size = lrs / bc1
        for n, p in self.params.items():
            if p.grad is None:
                continue
            g, m, v = p.grad, self.exp_avg[n], self.exp_avg_sq[n]
            if self.decays[n]:
                p.mul_(self._view(1 - lrs * self.wd, p))
            m.lerp_(g, self._view(1 - self.beta1, p))
            v.mul_(self._view(self.beta2, p)).addcmul_(g, g * self._view(1 - self.beta2, p))
            denom = v.sqrt().div_(self._view(bc2_sqrt, p)).add_(self.eps)
            p.addcdiv_(m * self._view(-step_size, p), denom)

    @torch.no_grad()
    def amplify_slow_gradient(self):
        """Grokfast's EMA filter: ema <- alpha ema + (1 - alpha) g (ema = g at the first
        step), then g <- g + lamb ema, per member. Nothing when no member uses it."""
        if self.grad_ema is None:
            return
        for n, p in self.params.items():
            if p.grad is None:
                continue
            e = self.grad_ema[n]
            if self.t == 0:
                e.copy_(p.grad)
            else:
                e.mul_(self._view(self.gf_alpha, p)).add_(p.grad * self._view(1 - self.gf_alpha, p))
            p.grad.add_(e * self._view(self.gf_lamb, p))

    @torch.no_grad()
    def perpendicular_gradient(self, members: torch.Tensor):
        """Prieto et al.'s perpendicular gradient for the ``members`` (a (K,) mask): each
        weight tensor's gradient minus its projection on the weight, rescaled to the
        gradient's norm."""
        for p in self.params.values():
            if p.grad is None:
                continue
            w, g = p.reshape(self.k, -1), p.grad.reshape(self.k, -1)
            proj = (w * g).sum(1) / ((w * w).sum(1) + 1e-30)
            ortho = g - proj[:, None] * w
            ortho = ortho * (g.norm(dim=1) / (ortho.norm(dim=1) + 1e-30))[:, None]
            p.grad.copy_(torch.where(members[:, None], ortho, g).view_as(p.grad))

    def zero_grad(self):
        for p in self.params.values():
            p.grad = None

    def member_state(self, k: int) -> dict:
        out = {"t": self.t, "exp_avg": {n: v[k].clone() for n, v in self.exp_avg.items()},
               "exp_avg_sq": {n: v[k].clone() for n, v in self.exp_avg_sq.items()}}
        if self.grad_ema is not None:
            out["grad_ema"] = {n: v[k].clone() for n, v in self.grad_ema.items()}
        return out

    @torch.no_grad()
    def load_member(self, k: int, s: dict):
        self.t = s["t"]
        for n in self.params:
            self.exp_avg[n][k].copy_(s["exp_avg"][n])
            self.exp_avg_sq[n][k].copy_(s["exp_avg_sq"][n])
            if self.grad_ema is not None and "grad_ema" in s:
                self.grad_ema[n][k].copy_(s["grad_ema"][n])


def stablemax_cross_entropy(logits, y, reduction: str = "mean"):
    """Cross-entropy with StableMax in place of softmax (Prieto et al. 2025): s(x) = x + 1
    for x >= 0 and 1 / (1 - x) below, normalised; no exponential to overflow."""
    s = torch.where(logits >= 0, logits.clamp(min=0) + 1, 1 / (1 - logits.clamp(max=0)))
    loss = -torch.log(s.gather(-1, y[:, None]).squeeze(-1) / s.sum(-1))
    return loss.mean() if reduction == "mean" else loss


HIDDEN_EXCLUDED = ("tok_emb", "pos_emb", "head")   # embeddings and unembedding: AdamW


class StackedMuon(StackedAdamW):
    """Muon (Tveit et al. 2025) on every member's hidden weight matrices -- 2-D in the solo
    model, not the embeddings or the unembedding -- with ``torch.optim.Muon`` on that
    member's 2-D slice of the stacked weight; AdamW (the parent) on everything else. Its
    learning rate is ``train.muon_lr`` under the same warmup; weight decay is decoupled."""

    def __init__(self, model, cfgs, eps: float = 1e-8):
        super().__init__(model, cfgs, eps)
        self.hidden = [n for n in self.params if model.solo_dims[n] == 2
                       and n.split(".")[0] not in HIDDEN_EXCLUDED]
        self.cfgs = cfgs
        self.views = [[self.params[n].detach()[k] for n in self.hidden] for k in range(self.k)]
        self.muons = [torch.optim.Muon(v, lr=c.train.muon_lr, weight_decay=c.train.weight_decay,
                                       momentum=c.train.muon_momentum)
                      for v, c in zip(self.views, cfgs)]

    @torch.no_grad()
    def step(self, lrs: torch.Tensor):
        grads = {n: self.params[n].grad for n in self.hidden}
        for n in self.hidden:                       # AdamW skips the hidden matrices
            self.params[n].grad = None
        super().step(lrs)
        warm = (lrs.cpu() / torch.tensor([c.train.lr for c in self.cfgs])).tolist()
        for k, opt in enumerate(self.muons):
            for n, v in zip(self.hidden, self.views[k]):
                v.grad = None if grads[n] is None else grads[n][k]
            opt.param_groups[0]["lr"] = self.cfgs[k].train.muon_lr * warm[k]
            opt.step()
        for n in self.hidden:
            self.params[n].grad = grads[n]

    def member_state(self, k: int) -> dict:
        return {**super().member_state(k), "muon": self.muons[k].state_dict()}

    def load_member(self, k: int, s: dict):
        super().load_member(k, s)
        self.muons[k].load_state_dict(s["muon"])


class Trainer:
    """K members of one shape (``group_key``) trained as one stacked network.

    ``Trainer(cfg, ds, device)`` is a run alone; ``Trainer([cfg, ...], [ds, ...], device)``
    a group. The store decides where each member's state goes."""

    def __init__(self, cfgs, datasets, device: str, init_weights=None):
        if not isinstance(cfgs, (list, tuple)):
            cfgs, datasets, init_weights = [cfgs], [datasets], [init_weights]
        self.cfgs, self.k, self.device = list(cfgs), len(cfgs), device
        self.cfg = self.cfgs[0]       # the shape and schedule every member shares
        if len({group_key(c) for c in self.cfgs}) > 1:
            raise ValueError("a group's configs must share group_key (model, batch, schedule)")
        init_weights = list(init_weights or [None] * self.k)
        vocab = len(datasets[0].vocab)
        if any(len(ds.vocab) != vocab for ds in datasets):
            raise ValueError("a group's datasets must share one vocabulary")
        solos = []
        for cfg, w in zip(self.cfgs, init_weights):
            torch.manual_seed(training_seed(cfg))
            m = build_model(cfg, vocab)
            if w is not None:
                m.load_state_dict(w)
            solos.append(m)
        self.model = stack_models(solos).to(device)
        t = self.cfg.train
        self.ema = copy.deepcopy(self.model).eval() if t.ema > 0 else None
        self.ema_keep = torch.tensor([c.train.ema for c in self.cfgs], device=device)
        self.clip = torch.tensor([c.train.grad_clip for c in self.cfgs], device=device)
        self.opt = (StackedMuon if self.cfg.train.optimizer == "muon" else StackedAdamW)(
            self.model, self.cfgs)
        self.stablemax = self.cfg.train.loss == "stablemax"     # group_key: all or none
        self.perp = torch.tensor([c.train.perp_grad for c in self.cfgs], device=device)
        self.gens = [torch.Generator(device=device).manual_seed(training_seed(c) + 1)
                     for c in self.cfgs]
        data = [ds.tensors(ds.train, device) for ds in datasets]
        self.xs, self.poss, self.ys = ([d[i] for d in data] for i in range(3))
        self.probes = ProbeSets(datasets, device)
        self.step = 0
        self.loss_sum = torch.zeros(self.k, device=device)
        self.loss_count = 0
        self.rows: list[list] = [[] for _ in range(self.k)]
        self.active = [True] * self.k
        self.diverged = [""] * self.k  # why a member stopped short (then it is not stored)
        # train.precision; a dtype forces autocast on CPU too (grokbook bench --bf16)
        self.autocast = precision_autocast(self.cfg.train.precision, device)
        self._lrs = (None, None)   # the learning rates of the last step, and on the device

    # -- the step, in the parts the bench times
    def next_batch(self):
        B = self.cfg.train.batch_size
        idx = [torch.randint(len(x), (B,), generator=g, device=self.device)
               for x, g in zip(self.xs, self.gens)]
        return (torch.cat([x[i] for x, i in zip(self.xs, idx)]),
                torch.cat([p[i] for p, i in zip(self.poss, idx)]),
                torch.cat([y[i] for y, i in zip(self.ys, idx)]))

    def forward_loss(self, batch):
        """Each member's mean loss on its own batch (K,); the answer only."""
        x, pos, y = batch
        with autocast_for(self.device, self.autocast):
            logits = self.model(x, pos)                         # (K*B, V)
        ce = stablemax_cross_entropy if self.stablemax else F.cross_entropy
        return ce(logits.float(), y, reduction="none").view(self.k, -1).mean(1)

    def backward(self, loss):
        self.opt.zero_grad()
        loss.sum().backward()     # members share no weight: each gets its own gradient

    @torch.no_grad()
    def optimizer_step(self):
        params = self.opt.params.values()
        if bool(self.perp.any()):
            self.opt.perpendicular_gradient(self.perp)
        self.opt.amplify_slow_gradient()
        if (self.clip > 0).any():
            sq = sum(p.grad.reshape(self.k, -1).pow(2).sum(1) for p in params
                     if p.grad is not None)
            coef = torch.where(self.clip > 0, (self.clip / (sq.sqrt() + 1e-6)).clamp(max=1.0),
                               torch.ones_like(self.clip))
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(coef.view(-1, *([1] * (p.dim() - 1))))
        lrs = [lr_at(self.step, c.train) for c in self.cfgs]
        if lrs != self._lrs[0]:       # after warmup it never changes: no copy per step
            self._lrs = (lrs, torch.tensor(lrs, device=self.device))
        self.opt.step(self._lrs[1])
        if self.ema is not None:
            for pe, p in zip(self.ema.parameters(), self.model.parameters()):
                pe.lerp_(p, (1.0 - self.ema_keep).view(-1, *([1] * (p.dim() - 1))))

    def train_step(self):
        loss = self.forward_loss(self.next_batch())
        self.backward(loss)
        self.optimizer_step()
        self.loss_sum += loss.detach()
        self.loss_count += 1
        self.step += 1

    @property
    def eval_model(self):
        return self.ema if self.ema is not None else self.model

    def evaluate(self) -> list:
        """Evaluate every member; rows are kept for the active ones. Per member
        {probe: (loss, accuracy)}."""
        results = self.probes.evaluate(self.eval_model, autocast=self.autocast)
        means = (self.loss_sum / max(self.loss_count, 1)).tolist()
        for k in range(self.k):
            if not self.active[k]:
                continue
            train_loss = means[k] if self.loss_count else float("nan")
            if self.loss_count and not math.isfinite(train_loss):
                t = self.cfgs[k].train
                self.diverged[k] = (
                    f"training diverged: the mean training loss over steps "
                    f"{self.step - self.loss_count}-{self.step} is {train_loss} (train.lr={t.lr}, "
                    f"train.weight_decay={t.weight_decay}, train.grad_clip={t.grad_clip}); the run "
                    f"was not stored. Lower train.lr or turn on train.grad_clip")
                self.active[k] = False
                continue
            self.rows[k].append({"step": self.step, "split": "train", "loss": train_loss,
                                 "accuracy": float("nan")})
            for name, (loss, acc) in results[k].items():
                self.rows[k].append({"step": self.step, "split": name, "loss": loss,
                                     "accuracy": acc})
        self.loss_sum.zero_()
        self.loss_count = 0
        return results

    # -- state, member by member (each member's resume state is its own run's)
    def weights(self, k: int = 0) -> dict:
        return {n: v.cpu() for n, v in member_state(self.eval_model, k).items()}

    def state(self, k: int = 0) -> dict:
        return {"step": self.step, "model": member_state(self.model, k),
                "ema": member_state(self.ema, k) if self.ema is not None else None,
                "opt": self.opt.member_state(k), "gen": self.gens[k].get_state(),
                "cpu_rng": torch.get_rng_state(),
                "loss_sum": self.loss_sum[k].clone(), "loss_count": self.loss_count,
                "rows": list(self.rows[k])}

    def load_state(self, s: dict, k: int = 0):
        self.step = s["step"]
        load_member(self.model, k, s["model"])
        if self.ema is not None:
            load_member(self.ema, k, s["ema"])
        self.opt.load_member(k, s["opt"])
        self.gens[k].set_state(s["gen"])
        torch.set_rng_state(s["cpu_rng"])
        self.loss_sum[k] = s["loss_sum"].to(self.device)
        self.loss_count = s["loss_count"]
        self.rows[k] = list(s["rows"])


# the stop rules that read a run's own clock: (train field, probe, threshold)
CLOCKS = (("stop_after_fitted", MEMORIZED_SPLIT, FITTED_AT),
          ("stop_after_grokked", GROKKED_SPLIT, GROKKED_AT))


def run_loop(trainer: Trainer, on_checkpoint, progress: bool = True, stop_after: int | None = None,
             wall_offset: float = 0.0, timeline: list | None = None, report=None, on_done=None):
    """Train to ``max_steps``, evaluating and checkpointing on schedule.

    ``on_checkpoint(trainer, k, wall_seconds)`` persists member k's state; ``on_done(trainer,
    k, wall_seconds)`` (optional) hears that member k is complete; ``report(step,
    steps_per_s)`` (optional) hears of every evaluation. ``stop_after`` ends the call after
    that many steps (used to test interruption). ``train.stop_at`` ends a member early,
    complete, once its held-out ID accuracy reaches it; ``train.stop_after_fitted`` at the
    first evaluation at or past that multiple of its fitted step (train_inferred >=
    FITTED_AT), ``train.stop_after_grokked`` of its grokked step (test_inferred_iid >=
    GROKKED_AT); both read from its own rows, so a resumed run stops where an
    uninterrupted one does. Returns (wall seconds so far, whether every member is complete).
    """
    from tqdm.auto import tqdm
    t = trainer.cfg.train
    evals, ckpts = set(eval_steps(t)), set(checkpoint_steps(t))
    timeline = timeline if timeline is not None else []
    start, t0 = trainer.step, time.perf_counter()
    bar = tqdm(total=t.max_steps, initial=start, disable=not progress, desc="train",
               mininterval=1.0)
    fresh = start == 0 and not any(trainer.rows)

    def wall():
        return wall_offset + time.perf_counter() - t0

    finished = set()
    # each clock's first crossing per member: (field, split, threshold) -> [step or None]
    first = {c: [next((r["step"] for r in rows if r["split"] == c[1] and r["step"] > 0
                       and r["accuracy"] >= c[2]), None) for rows in trainer.rows]
             for c in CLOCKS}

    def past_clock(k, s) -> bool:
        t_k = trainer.cfgs[k].train
        return any(getattr(t_k, c[0]) > 0 and first[c][k] is not None
                   and s >= getattr(t_k, c[0]) * first[c][k] for c in CLOCKS)

    def finish(k):
        trainer.active[k] = False
        finished.add(k)
        if on_done is not None:
            on_done(trainer, k, wall())

    if not fresh:       # resumed at a step where a member had already reached its stop (the
        for k in range(trainer.k):      # process died after saving it, before completing)
            t_k = trainer.cfgs[k].train
            iid = [r["accuracy"] for r in trainer.rows[k]
                   if r["step"] == start and r["split"] == "test_inferred_iid"]
            if trainer.active[k] and (past_clock(k, start)
                                      or (t_k.stop_at > 0 and iid and iid[-1] >= t_k.stop_at)):
                finish(k)
        if not any(trainer.active):
            bar.close()
            return wall(), True

    while True:
        s = trainer.step
        if s > start or fresh:
            reached = [False] * trainer.k
            if s in evals:
                res = trainer.evaluate()
                timeline.append({"step": s, "wall_seconds": wall()})
                if report is not None:
                    report(s, (s - start) / max(time.perf_counter() - t0, 1e-9))
                bar.set_postfix({n.replace("test_inferred_", ""): f"{a:.2f}" for n, (_, a)
                                 in res[0].items() if "inferred" in n}, refresh=False)
                for k in range(trainer.k):
                    if trainer.diverged[k] and k not in finished:
                        finish(k)
                    stop = trainer.cfgs[k].train.stop_at
                    iid = res[k].get("test_inferred_iid", (None, 0.0))[1]
                    reached[k] = trainer.active[k] and stop > 0 and iid >= stop
                    for c in CLOCKS:
                        if first[c][k] is None and s > 0 and \
                                res[k].get(c[1], (0, 0.0))[1] >= c[2]:
                            first[c][k] = s
                    reached[k] = reached[k] or (trainer.active[k] and past_clock(k, s))
            for k in range(trainer.k):
                if trainer.active[k] and (s in ckpts or reached[k]):
                    on_checkpoint(trainer, k, wall())
                if reached[k]:
                    finish(k)
            if not any(trainer.active):
                break
        if s >= t.max_steps:
            for k in range(trainer.k):
                if trainer.active[k]:
                    finish(k)
            break
        if stop_after is not None and s - start >= stop_after:
            break
        trainer.train_step()
        bar.update(1)
    bar.close()
    return wall(), not any(trainer.active)
