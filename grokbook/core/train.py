"""The training loop. Batches are drawn by indexing tensors already on the device, the
loss is accumulated on the device, and the host reads it only at evaluations.

Step k means "after k optimizer updates": evaluation and checkpoint at step k happen
before update k + 1. Everything that the next step depends on (weights, optimizer,
both random generators, the running training loss) is in the resume state, so an
interrupted run resumed from a checkpoint ends with the same numbers.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .arch import build_model
from .models import param_groups
from .tables import n_rows


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite; the run cannot be completed as configured."""


def resolve_device(name: str = "auto") -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but no CUDA device is available; "
                         "allowed here: auto, cpu")
    return name


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


class ProbeSet:
    """Every probe set concatenated once, evaluated in one batched pass."""

    def __init__(self, ds, device, names=None):
        names = [n for n in (names or ds.probes) if n_rows(ds.probes[n])]
        self.names = names
        parts = [ds.tensors(ds.probes[n], device) for n in names]
        self.x = torch.cat([p[0] for p in parts])
        self.pos = torch.cat([p[1] for p in parts])
        self.y = torch.cat([p[2] for p in parts])
        self.seg = torch.cat([torch.full((len(p[0]),), i, device=device)
                              for i, p in enumerate(parts)])

    @torch.no_grad()
    def evaluate(self, model, chunk: int = 16384, autocast=None) -> dict:
        was_training = model.training
        model.eval()
        correct, losses = [], []
        for s in range(0, len(self.x), chunk):
            with autocast_for(self.x.device.type, autocast):
                logits = model(self.x[s:s + chunk], self.pos[s:s + chunk]).float()
            y = self.y[s:s + chunk]
            correct.append((logits.argmax(-1) == y).float())
            losses.append(F.cross_entropy(logits, y, reduction="none"))
        model.train(was_training)
        n = len(self.names)
        count = torch.bincount(self.seg, minlength=n).float()
        acc = torch.bincount(self.seg, torch.cat(correct), minlength=n) / count
        loss = torch.bincount(self.seg, torch.cat(losses), minlength=n) / count
        acc, loss = acc.tolist(), loss.tolist()  # the one host sync of an evaluation
        return {name: (loss[i], acc[i]) for i, name in enumerate(self.names)}


def autocast_for(device_type: str, dtype=None):
    """bf16 on CUDA; on CPU full precision unless ``dtype`` asks otherwise (the bench)."""
    if dtype is not None:
        return torch.autocast(device_type, dtype=dtype)
    if device_type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


class Trainer:
    """Owns model, optimizer and generators; the run store decides where state goes."""

    def __init__(self, cfg, ds, device: str, init_weights: dict | None = None):
        self.cfg, self.ds, self.device = cfg, ds, device
        t = cfg.train
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, len(ds.vocab)).to(device)
        if init_weights is not None:
            self.model.load_state_dict(init_weights)
        self.ema = copy.deepcopy(self.model).eval() if t.ema > 0 else None
        fused = device == "cuda"
        self.opt = torch.optim.AdamW(param_groups(self.model, t.weight_decay), lr=t.lr,
                                     betas=(t.beta1, t.beta2), fused=fused)
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        self.x, self.pos, self.y = ds.tensors(ds.train, device)
        self.probes = ProbeSet(ds, device)
        self.step = 0
        self.loss_sum = torch.zeros((), device=device)
        self.loss_count = 0
        self.rows: list[dict] = []
        self.autocast = None      # a dtype forces autocast on CPU too (grokbook bench --bf16)

    # -- the step, in the parts the bench times
    def next_batch(self):
        idx = torch.randint(len(self.x), (self.cfg.train.batch_size,), generator=self.gen,
                            device=self.device)
        return self.x[idx], self.pos[idx], self.y[idx]

    def forward_loss(self, batch):
        x, pos, y = batch
        with autocast_for(self.device, self.autocast):
            logits = self.model(x, pos)                         # (B, V)
        return F.cross_entropy(logits.float(), y)               # loss on the answer only

    def backward(self, loss):
        self.opt.zero_grad(set_to_none=True)
        loss.backward()

    def optimizer_step(self):
        t = self.cfg.train
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, t)
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.opt.step()
        if self.ema is not None:
            with torch.no_grad():
                for pe, p in zip(self.ema.parameters(), self.model.parameters()):
                    pe.lerp_(p, 1.0 - t.ema)

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

    def evaluate(self) -> dict:
        result = self.probes.evaluate(self.eval_model, autocast=self.autocast)
        train_loss = (self.loss_sum / self.loss_count).item() if self.loss_count else float("nan")
        if self.loss_count and not math.isfinite(train_loss):
            t = self.cfg.train
            raise TrainingDiverged(
                f"training diverged: the mean training loss over steps {self.step - self.loss_count}"
                f"-{self.step} is {train_loss} (train.lr={t.lr}, train.weight_decay="
                f"{t.weight_decay}, train.grad_clip={t.grad_clip}); the run was not stored. "
                f"Lower train.lr or turn on train.grad_clip")
        self.rows.append({"step": self.step, "split": "train", "loss": train_loss,
                          "accuracy": float("nan")})
        for name, (loss, acc) in result.items():
            self.rows.append({"step": self.step, "split": name, "loss": loss, "accuracy": acc})
        self.loss_sum.zero_()
        self.loss_count = 0
        return result

    # -- state
    def weights(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.eval_model.state_dict().items()}

    def state(self) -> dict:
        return {"step": self.step, "model": self.model.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "opt": self.opt.state_dict(), "gen": self.gen.get_state(),
                "cpu_rng": torch.get_rng_state(), "loss_sum": self.loss_sum.clone(),
                "loss_count": self.loss_count, "rows": list(self.rows)}

    def load_state(self, s: dict):
        self.step = s["step"]
        self.model.load_state_dict(s["model"])
        if self.ema is not None:
            self.ema.load_state_dict(s["ema"])
        self.opt.load_state_dict(s["opt"])
        self.gen.set_state(s["gen"])
        torch.set_rng_state(s["cpu_rng"])
        self.loss_sum = s["loss_sum"].to(self.device)
        self.loss_count = s["loss_count"]
        self.rows = list(s["rows"])


def run_loop(trainer: Trainer, on_checkpoint, progress: bool = True, stop_after: int | None = None,
             wall_offset: float = 0.0, timeline: list | None = None, report=None):
    """Train to ``max_steps``, evaluating and checkpointing on schedule.

    ``on_checkpoint(trainer, wall_seconds)`` persists state; ``report(step, steps_per_s)``
    (optional) hears of every evaluation. ``stop_after`` ends the call
    after that many steps (used to test interruption). ``train.stop_at`` ends the run
    early, complete, once held-out ID accuracy reaches it. Returns (wall seconds so far,
    whether the run is complete).
    """
    from tqdm.auto import tqdm
    t = trainer.cfg.train
    evals, ckpts = set(eval_steps(t)), set(checkpoint_steps(t))
    timeline = timeline if timeline is not None else []
    start, t0 = trainer.step, time.perf_counter()
    bar = tqdm(total=t.max_steps, initial=start, disable=not progress, desc="train",
               mininterval=1.0)
    fresh = start == 0 and not trainer.rows

    def wall():
        return wall_offset + time.perf_counter() - t0

    done = False
    while True:
        s = trainer.step
        if s > start or fresh:
            reached = False
            if s in evals:
                res = trainer.evaluate()
                timeline.append({"step": s, "wall_seconds": wall()})
                if report is not None:
                    report(s, (s - start) / max(time.perf_counter() - t0, 1e-9))
                bar.set_postfix({k.replace("test_inferred_", ""): f"{a:.2f}" for k, (_, a)
                                 in res.items() if "inferred" in k}, refresh=False)
                iid = res.get("test_inferred_iid", (None, 0.0))[1]
                reached = t.stop_at > 0 and iid >= t.stop_at
            if s in ckpts or reached:
                on_checkpoint(trainer, wall())
            if reached:
                done = True
                break
        if s >= t.max_steps:
            done = True
            break
        if stop_after is not None and s - start >= stop_after:
            break
        trainer.train_step()
        bar.update(1)
    bar.close()
    return wall(), done
