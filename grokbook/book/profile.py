"""Where a training run's wall time goes: ``grokbook bench --profile``.

``profile_run(cfg)`` trains ``cfg`` for real through the run store (into a scratch store),
with the trainer's own methods and the store's writes timed in place: drawing batches,
forward, backward, the optimiser step, evaluation of the probe sets, and checkpoint and
store writes; the rest of the wall time is the loop's own bookkeeping. Beside it, the
FLOP/s the training steps achieved (the model's FLOPs per step, as the trainer counts
them) and the FLOP/s of one fp32 matrix multiply at the model's own largest shapes,
measured in the same process with the same threads -- so the fraction of peak is of what
this machine does at these sizes, not of a nominal number.
"""
from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections import defaultdict

import torch

from ..analysis.measures import flops_per_step_of
from ..core import store as store_mod
from ..core.train import Trainer, thread_count

PARTS = ("data", "forward", "backward", "optimizer", "evaluation", "checkpoints")
_TIMED = {"next_batch": "data", "forward_loss": "forward", "backward": "backward",
          "optimizer_step": "optimizer", "evaluate": "evaluation"}


@contextlib.contextmanager
def _timing(seconds: dict, shapes: dict):
    """Wrap the trainer's methods and the store's writes so each adds its wall time to
    ``seconds`` (and the first batch's shape to ``shapes``); restored on exit. Nested calls
    (a write inside a write) count once."""
    saved, depth = [], {"n": 0}

    def wrap(owner, name, part):
        fn = getattr(owner, name)

        def timed(*a, **k):
            if depth["n"]:
                return fn(*a, **k)
            depth["n"] += 1
            t0 = time.perf_counter()
            try:
                out = fn(*a, **k)
                if part == "data":          # the batch's input: (rows, tokens per row)
                    shapes.setdefault("batch", tuple(out[0].shape))
                return out
            finally:
                seconds[part] += time.perf_counter() - t0
                depth["n"] -= 1
        saved.append((owner, name, fn))
        setattr(owner, name, timed)

    for name, part in _TIMED.items():
        wrap(Trainer, name, part)
    for name in ("_atomic_torch", "atomic_json"):
        wrap(store_mod, name, "checkpoints")
    try:
        yield seconds
    finally:
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)


def gemm_rate(m: int, k: int, n: int, repeats: int = 7) -> float:
    """FLOP/s of an (m x k) @ (k x n) fp32 multiply on this process's threads (median of
    ``repeats`` after a warm-up)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        times.append((time.perf_counter() - t0) / 10)
    return 2 * m * k * n / statistics.median(times)


def model_gemm_peak(cfg, tokens: int) -> dict:
    """The best measured rate over the model's own matrix shapes: the (tokens x d) input
    through a d x d projection and a d x (expansion d) MLP."""
    d = cfg.model.d_model
    wide = d * max(cfg.model.trm_expansion, 4)
    rates = {f"{tokens}x{d}x{d}": gemm_rate(tokens, d, d),
             f"{tokens}x{d}x{wide}": gemm_rate(tokens, d, wide)}
    return {"shapes": rates, "peak": max(rates.values())}


def profile_run(cfg, steps: int = 1000) -> dict:
    """Train ``cfg`` (its schedule, cut at ``steps``) in a scratch store with every part
    timed; returns the seconds and wall fractions of ``PARTS`` and "other", steps/s,
    achieved FLOP/s of the training steps, and the measured GEMM peak at the model's
    shapes with the fraction it reaches."""
    t = cfg.train
    cfg = cfg.replace(**{"train.max_steps": steps,
                         "train.eval_dense_until": min(t.eval_dense_until, steps),
                         "train.stop_at": 0.0, "train.stop_after_grokked": 0.0,
                         "train.stop_after_fitted": 0.0})
    seconds, shapes = defaultdict(float), {}
    with tempfile.TemporaryDirectory() as tmp, _timing(seconds, shapes):
        t0 = time.perf_counter()
        run = store_mod.train(cfg, store=tmp, progress=False)
        wall = time.perf_counter() - t0
        per_step = flops_per_step_of(run)
    rows, length = shapes["batch"]
    tokens = rows * length
    threads, before = thread_count(), torch.get_num_threads()
    torch.set_num_threads(threads)          # the GEMM on the threads the training used
    try:
        gemm = model_gemm_peak(cfg, tokens)
    finally:
        torch.set_num_threads(before)
    out = {"config": {"arch": cfg.model.arch, "d_model": cfg.model.d_model,
                      "batch_size": cfg.train.batch_size, "steps": steps,
                      "eval_every": t.eval_every, "checkpoint_every": t.checkpoint_every},
           "threads": threads, "wall_seconds": wall,
           "steps_per_second": steps / wall}
    out["seconds"] = {p: seconds[p] for p in PARTS}
    out["seconds"]["other"] = max(wall - sum(seconds.values()), 0.0)
    out["fractions"] = {p: s / wall for p, s in out["seconds"].items()}
    train_s = sum(seconds[p] for p in ("data", "forward", "backward", "optimizer"))
    out["achieved_flops"] = per_step * steps / max(train_s, 1e-9)
    out["gemm_shapes"], out["gemm_peak_flops"] = gemm["shapes"], gemm["peak"]
    out["fraction_of_gemm_peak"] = out["achieved_flops"] / gemm["peak"]
    return out


def format_profile(p: dict) -> str:
    c = p["config"]
    lines = [f"profile: {c['arch']} d{c['d_model']}, batch {c['batch_size']}, {c['steps']} "
             f"steps (eval every {c['eval_every']}, checkpoint every "
             f"{c['checkpoint_every']}), {p['threads']} thread(s)",
             f"  wall {p['wall_seconds']:.1f} s, {p['steps_per_second']:.1f} steps/s"]
    for part, f in p["fractions"].items():
        lines.append(f"  {part:<12} {100 * f:5.1f} %  ({p['seconds'][part]:.2f} s)")
    lines.append(f"  training steps: {p['achieved_flops'] / 1e9:.1f} GFLOP/s; fp32 GEMM at "
                 f"the model's shapes: {p['gemm_peak_flops'] / 1e9:.1f} GFLOP/s; "
                 f"{100 * p['fraction_of_gemm_peak']:.0f} % of it")
    return "\n".join(lines)
