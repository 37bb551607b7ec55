"""How fast grokbook trains, against the way Wang et al.'s stack trains the same model.

``bench(cfg)`` times ``Trainer.train_step`` for a preset's model shape and batch after a
warm-up, then (optionally) a Hugging Face ``GPT2LMHeadModel`` of the same shape trained the
way Wang's code does it, in the same process, right after. It returns one flat-ish dict
(the CLI's ``--json`` line); ``format_report`` makes it readable.

What is measured, and how:

- **steps/s**: ``steps`` timed steps per repeat, median over ``repeats`` (device synchronised
  before and after each repeat). tokens/s = steps/s x batch x sequence length (grokbook: 3
  positions; the baseline: 10 padded positions). examples/s is the same for both.
- **FLOP/s** = steps/s x ``model.flops_per_token()`` x batch x 3, where flops_per_token =
  6 x (block parameters x loops) + 6 x layers x T x d_model + 6 x d_model x vocab (forward
  + backward; see ``grokbook.models``). The baseline's hardware FLOP/s uses the same
  formula with its own 10 positions and 50257 + graph-token vocabulary.
- **peak**: CPU: the "practical peak" is a large fp32 matmul (2048^3) timed in this process
  with the same threads; the "theoretical peak" is cores x clock x FLOPs/cycle read from
  ``/proc/cpuinfo`` (AVX-512 with FMA counted as 2 units x 16 fp32 lanes x 2 = 64
  FLOPs/cycle, AVX2+FMA as 32, else 8; an assumption, stated in the output). CUDA: a
  table of dense bf16 tensor-core peaks by device name, plus a measured bf16 matmul.
- **peak memory**: CPU: peak resident set size of the phase, from Linux's ``VmHWM`` after
  resetting it (``/proc/self/clear_refs``); else psutil's RSS sampled after every step;
  else ``ru_maxrss`` (process lifetime peak). CUDA: ``torch.cuda.max_memory_allocated``.
- **step split**: a re-timing of the parts of ``Trainer.train_step`` with the device
  synchronised between them: data (lr + index sampling + gather), forward (+ loss),
  backward (+ zero_grad), optimizer (clip + AdamW + EMA); ``other`` = the timed full
  step minus those parts (Python bookkeeping, noise). ``fixed_step_ms`` is the step time
  at batch 1: the per-step cost that does not shrink with the batch (dispatch, Python).
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import resource
import signal
import statistics
import sys
import time

import numpy as np
import torch

from ..chapters.detect import chapter_configs
from ..core.config import Config
from ..core.data import build_dataset
from ..core.train import Trainer, resolve_device

GPT2_VOCAB = 50257      # GPT-2's tokenizer; Wang's stack adds the graph tokens after it
WANG_SEQ_LEN = 10       # Wang's stack pads every example to 10 tokens
WANG_DROPOUT = 0.1      # GPT-2 defaults, as Wang trains

FLOPS_FORMULA = ("flops_per_second = steps_per_second * flops_per_token * batch_size * seq_len; "
                 "flops_per_token = 6*(block params * n_loops) + 6*n_layer*n_loops*seq_len*d_model "
                 "+ 6*d_model*vocab_size")

# Dense (no sparsity) bf16 tensor-core peaks, FLOP/s, from the vendors' data sheets.
# The first name that is a substring of torch.cuda.get_device_name() wins.
CUDA_BF16_PEAKS = [
    ("GB200", 2.5e15), ("B200", 2.25e15), ("B100", 1.75e15),
    ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12),
    ("GH200", 989e12), ("H800", 989e12), ("H20", 148e12),
    ("A100", 312e12), ("A800", 312e12), ("A40", 150e12), ("A30", 165e12), ("A10G", 70e12),
    ("A10", 125e12), ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12),
    ("RTX 4090", 165e12), ("RTX 3090", 71e12), ("RTX A6000", 155e12),
    ("V100", 125e12),   # no bf16: fp16 tensor-core peak
    ("T4", 65e12),      # no bf16: fp16 tensor-core peak
]


# ------------------------------------------------------------------ device facts
def _sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_theoretical_peak(threads: int | None = None) -> dict | None:
    """cores x clock x FLOPs/cycle (fp32), from /proc/cpuinfo; None where it cannot tell."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    if not mhz or not flags:
        return None
    f = set(flags.group(1).split())
    if "avx512f" in f and "fma" in f:
        per_cycle, isa = 64, "AVX-512 FMA, 2 units x 16 fp32 lanes x 2 (assumed 2 units)"
    elif "avx2" in f and "fma" in f:
        per_cycle, isa = 32, "AVX2 FMA, 2 units x 8 fp32 lanes x 2"
    else:
        per_cycle, isa = 8, "SSE, 4 lanes x 2 ops"
    cores = min(threads or os.cpu_count() or 1, os.cpu_count() or 1)
    ghz = float(mhz.group(1)) / 1000
    return {"flops_per_second": cores * ghz * 1e9 * per_cycle, "cores": cores, "ghz": ghz,
            "flops_per_cycle": per_cycle, "isa": isa}


def matmul_flops(device: str, dtype=torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n matmul, median of ``repeats`` after one warm-up."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times)


def cuda_table_peak(name: str) -> float | None:
    for key, peak in CUDA_BF16_PEAKS:
        if key in name:
            return peak
    return None


class PeakMemory:
    """Peak memory of one phase. ``with PeakMemory(device) as m: ...; m.peak``."""

    def __init__(self, device: str):
        self.device, self.peak, self.start_bytes = device, None, None
        self.method = None
        self._psutil = None

    @staticmethod
    def _status(key: str) -> int | None:
        try:
            m = re.search(rf"^{key}:\s+(\d+) kB", open("/proc/self/status").read(), re.M)
            return int(m.group(1)) * 1024 if m else None
        except OSError:
            return None

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start_bytes = torch.cuda.memory_allocated()
            self.method = "torch.cuda.max_memory_allocated"
            return self
        try:  # Linux: reset the peak RSS to the current RSS, read VmHWM at the end
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.start_bytes = self._status("VmRSS")
            self.method = "VmHWM (peak RSS of this phase, reset via /proc/self/clear_refs)"
            return self
        except OSError:
            pass
        try:
            import psutil
            self._psutil = psutil.Process()
            self.start_bytes = self.peak = self._psutil.memory_info().rss
            self.method = "psutil RSS sampled after every step"
        except ImportError:
            self.start_bytes = self._ru_maxrss()
            self.method = "ru_maxrss (peak RSS of the whole process so far)"
        return self

    def sample(self):
        if self._psutil is not None:
            self.peak = max(self.peak, self._psutil.memory_info().rss)

    def __exit__(self, *exc):
        if self.device == "cuda":
            self.peak = torch.cuda.max_memory_allocated()
        elif self.method.startswith("VmHWM"):
            self.peak = self._status("VmHWM")
        elif self._psutil is not None:
            self.sample()
        else:
            self.peak = self._ru_maxrss()
        return False

    @staticmethod
    def _ru_maxrss() -> int:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb if sys.platform == "darwin" else kb * 1024

    def fields(self) -> dict:
        return {"peak_memory_bytes": int(self.peak or 0),
                "peak_memory_increase_bytes": int((self.peak or 0) - (self.start_bytes or 0)),
                "memory_method": self.method}


# ------------------------------------------------------------------ timing
def _time_steps(step, device: str, steps: int, repeats: int, mem: PeakMemory | None = None):
    """steps/s of each repeat of ``steps`` calls of ``step()``."""
    rates = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
            if mem is not None:
                mem.sample()
        _sync(device)
        rates.append(steps / (time.perf_counter() - t0))
    return rates


class _Alarm(Exception):
    pass


def _caused_by_alarm(e: BaseException | None) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, _Alarm):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise _Alarm after ``seconds`` (main thread, Unix only; else no limit)."""
    usable = (seconds and hasattr(signal, "SIGALRM")
              and __import__("threading").current_thread() is __import__("threading").main_thread())
    if not usable:
        yield
        return

    def handler(*_):
        raise _Alarm()
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def step_split(trainer: Trainer, n: int = 10) -> dict:
    """Median ms of the parts of ``Trainer.train_step`` -- its own methods, timed with the
    device synchronised between them; the bookkeeping of ``train_step`` is left out."""
    dev = trainer.device
    parts = {k: [] for k in ("data", "forward", "backward", "optimizer")}
    for _ in range(n):
        _sync(dev)
        t0 = time.perf_counter()
        batch = trainer.next_batch()
        _sync(dev)
        t1 = time.perf_counter()
        loss = trainer.forward_loss(batch)
        _sync(dev)
        t2 = time.perf_counter()
        trainer.backward(loss)
        _sync(dev)
        t3 = time.perf_counter()
        trainer.optimizer_step()
        _sync(dev)
        t4 = time.perf_counter()
        trainer.step += 1
        for k, a, b in (("data", t0, t1), ("forward", t1, t2), ("backward", t2, t3),
                        ("optimizer", t3, t4)):
            parts[k].append(1e3 * (b - a))
    return {f"{k}_ms": statistics.median(v) for k, v in parts.items()}


# ------------------------------------------------------------------ grokbook
def _model_fields(cfg, vocab_size: int) -> dict:
    m = cfg.model
    return {"arch": m.arch, "n_layer": m.n_layer, "d_model": m.d_model, "n_head": m.n_head,
            "vocab_size": vocab_size, "n_loops": m.n_loops}


def bench_grokbook(cfg, ds, device: str, steps: int, repeats: int, warmup: int,
                   compile: bool = False, compile_timeout: float | None = 300,
                   autocast=None, split: bool = True, compile_mode: str | None = None) -> dict:
    out: dict = {}
    with PeakMemory(device) as mem:
        trainer = Trainer(cfg, ds, device)
        trainer.autocast = autocast if device == "cpu" else None
        trainer.model.train()
        if compile:
            trainer.model = torch.compile(trainer.model, mode=compile_mode)
        t0 = time.perf_counter()
        try:
            with _time_limit(compile_timeout if compile else None):
                for _ in range(max(warmup, 1)):
                    trainer.train_step()
                _sync(device)
        except Exception as e:  # dynamo wraps the alarm in its own exception types
            if not _caused_by_alarm(e):
                raise
            torch._dynamo.reset()
            return {"error": f"torch.compile warm-up exceeded {compile_timeout} s; "
                             f"measured eager instead"}
        out["warmup_seconds"] = time.perf_counter() - t0
        rates = _time_steps(trainer.train_step, device, steps, repeats, mem)
        if split:
            out["step_split"] = step_split(trainer, min(max(steps, 3), 20))
    out.update(mem.fields())
    model = getattr(trainer.model, "_orig_mod", trainer.model)
    seq_len = model.seq_len
    B = cfg.train.batch_size
    sps = statistics.median(rates)
    fpt = model.flops_per_token() if hasattr(model, "flops_per_token") else float("nan")
    out.update({
        "steps_per_second": sps, "steps_per_second_repeats": rates,
        "seq_len": seq_len, "tokens_per_step": B * seq_len,
        "tokens_per_second": sps * B * seq_len, "examples_per_second": sps * B,
        "flops_per_token": fpt, "flops_per_step": fpt * B * seq_len,
        "flops_per_second": sps * fpt * B * seq_len, "n_params": model.num_params(),
    })
    if split:
        s = out["step_split"]
        s["step_ms"] = 1e3 / sps
        s["other_ms"] = s["step_ms"] - sum(s[k] for k in
                                           ("data_ms", "forward_ms", "backward_ms", "optimizer_ms"))
        tiny = Trainer(cfg.replace(**{"train.batch_size": 1}), ds, device)
        tiny.autocast = trainer.autocast
        for _ in range(3):
            tiny.train_step()
        s["fixed_step_ms"] = 1e3 / statistics.median(
            _time_steps(tiny.train_step, device, max(steps, 10), 3))
    return out


# ------------------------------------------------------------------ Wang-style baseline
def wang_examples(ds, vocab_offset: int = GPT2_VOCAB):
    """Wang's format: ``<e_h><r1>[<r2>]<e_t></a>`` padded to 10, loss on ``<e_t></a>``.

    Returns (input_ids, attention_mask, labels), each (N, 10) int64; graph token g is id
    ``vocab_offset + g`` (after GPT-2's vocabulary); labels are -100 off the answer.
    """
    x, pos, y = (t.numpy() for t in ds.tensors(ds.train))
    v = ds.vocab
    n = len(x)
    ids = np.full((n, WANG_SEQ_LEN), v.pad, dtype=np.int64)
    ids[:, :3] = x
    rows = np.arange(n)
    ids[rows, pos + 1] = y
    ids[rows, pos + 2] = v.end
    length = pos + 3
    cols = np.arange(WANG_SEQ_LEN)[None, :]
    mask = (cols < length[:, None]).astype(np.int64)
    ids = np.where(mask == 1, ids, v.pad) + vocab_offset
    labels = np.full_like(ids, -100)
    labels[rows, pos + 1] = ids[rows, pos + 1]
    labels[rows, pos + 2] = ids[rows, pos + 2]
    return torch.as_tensor(ids), torch.as_tensor(mask), torch.as_tensor(labels)


def bench_wang(cfg, ds, device: str, steps: int, repeats: int, warmup: int,
               vocab: str = "gpt2") -> dict:
    """GPT2LMHeadModel, 10-token padded sequences, DataLoader, AdamW: Wang's way.

    ``vocab="gpt2"`` (Wang's) carries GPT-2's 50257 rows before the graph's tokens;
    ``vocab="graph"`` drops them, to show how much of the cost they are.
    """
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
    except ImportError as e:
        return {"available": False,
                "reason": f"transformers is not importable ({e}); "
                          f"`pip install grokbook[bench]` to compare with Wang's stack"}
    from torch.utils.data import DataLoader, TensorDataset
    if cfg.model.arch != "transformer":
        return {"available": False, "reason": f"no Wang-style baseline for arch {cfg.model.arch!r}"}
    m, t = cfg.model, cfg.train
    offset = {"gpt2": GPT2_VOCAB, "graph": 0}[vocab]
    vocab = offset + len(ds.vocab)
    with PeakMemory(device) as mem:
        torch.manual_seed(cfg.seed)
        conf = GPT2Config(vocab_size=vocab, n_embd=m.d_model, n_layer=m.n_layer * m.n_loops,
                          n_head=m.n_head, resid_pdrop=WANG_DROPOUT, embd_pdrop=WANG_DROPOUT,
                          attn_pdrop=WANG_DROPOUT)
        model = GPT2LMHeadModel(conf).to(device).train()
        no_decay = [p for n, p in model.named_parameters() if "bias" in n or ".ln_" in n
                    or n.startswith("transformer.ln_f")]
        ids_nd = {id(p) for p in no_decay}
        decay = [p for p in model.parameters() if id(p) not in ids_nd]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=t.lr, betas=(t.beta1, t.beta2))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / t.warmup_steps) if t.warmup_steps else 1.0)
        ids, mask, labels = wang_examples(ds, offset)
        loader = DataLoader(TensorDataset(ids, mask, labels), batch_size=t.batch_size,
                            shuffle=True, drop_last=len(ids) >= t.batch_size,
                            generator=torch.Generator().manual_seed(cfg.seed),
                            pin_memory=device == "cuda")
        fp16 = device == "cuda"   # Wang trains in fp16 with a loss scaler on GPU
        scaler = torch.amp.GradScaler("cuda") if fp16 else None
        batches = iter(loader)

        def step():
            nonlocal batches
            try:
                b = next(batches)
            except StopIteration:
                batches = iter(loader)
                b = next(batches)
            b = [z.to(device, non_blocking=True) for z in b]
            with torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
                loss = model(input_ids=b[0], attention_mask=b[1], labels=b[2]).loss
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(max(warmup, 1)):
            step()
        rates = _time_steps(step, device, steps, repeats, mem)
    sps = statistics.median(rates)
    body = sum(p.numel() for p in model.transformer.h.parameters())
    L, d = conf.n_layer, m.d_model
    fpt = 6 * body + 6 * L * WANG_SEQ_LEN * d + 6 * d * vocab
    B = t.batch_size
    out = {"available": True, "stack": "transformers.GPT2LMHeadModel + DataLoader + AdamW",
           "transformers": __import__("transformers").__version__,
           "vocab_size": vocab, "seq_len": WANG_SEQ_LEN, "dropout": WANG_DROPOUT,
           "precision": "fp16 autocast + GradScaler" if fp16 else "fp32",
           "steps_per_second": sps, "steps_per_second_repeats": rates,
           "tokens_per_second": sps * B * WANG_SEQ_LEN, "examples_per_second": sps * B,
           "flops_per_token": fpt, "flops_per_second": sps * fpt * B * WANG_SEQ_LEN,
           "n_params": sum(p.numel() for p in model.parameters())}
    out.update(mem.fields())
    return out


# ------------------------------------------------------------------ the benchmark
def bench(cfg, device: str = "cpu", steps: int = 20, repeats: int = 3, warmup: int = 3,
          baseline: bool = True, threads: int | None = None, compile: bool = False,
          compile_timeout: float | None = 300, autocast: str | None = None,
          split: bool = True, peak: bool = True, preset_name: str | None = None,
          baseline_steps: int | None = None, baseline_repeats: int | None = None,
          baseline_vocab: str = "gpt2", compile_mode: str | None = None) -> dict:
    """Time grokbook's training step (and Wang's way, if asked) for ``cfg``'s shape.

    The baseline is much slower; ``baseline_steps``/``baseline_repeats`` (default: the
    same as grokbook's) keep its share of a run short.
    """
    device = resolve_device(device)
    cfg = cfg.replace(**{"train.device": device})
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    dtype = {None: None, "none": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}[autocast]
    try:
        ds = build_dataset(cfg.data, cfg.seed)
        res = {"preset": preset_name, "device": device, "threads": torch.get_num_threads(),
               "batch_size": cfg.train.batch_size, "steps": steps, "repeats": repeats,
               "warmup": warmup, "model": _model_fields(cfg, len(ds.vocab)),
               "options": {"compile": compile, "compile_mode": compile_mode if compile else None,
                           "cpu_autocast": autocast if dtype else None},
               "torch": torch.__version__, "flops_formula": FLOPS_FORMULA}
        if device == "cuda":
            res["device_name"] = torch.cuda.get_device_name(0)
            res["precision"] = "bf16 autocast, fused AdamW"
        else:
            res["device_name"] = f"{cpu_name()} ({os.cpu_count()} cores)"
            res["precision"] = "bf16 autocast" if dtype else "fp32"
        g = bench_grokbook(cfg, ds, device, steps, repeats, warmup, compile, compile_timeout,
                           dtype, split, compile_mode)
        if "error" in g:  # torch.compile did not finish in time: measure eager instead
            res["options"].update({"compile": False, "compile_error": g["error"]})
            g = bench_grokbook(cfg, ds, device, steps, repeats, warmup, False, None, dtype, split)
        res.update(g)
        if peak:
            res.update(_peak_fields(device, res["flops_per_second"], dtype))
        if baseline:
            b = bench_wang(cfg, ds, device, baseline_steps or steps,
                           baseline_repeats or repeats, min(warmup, 2), baseline_vocab)
            b.update({"steps": baseline_steps or steps, "repeats": baseline_repeats or repeats})
            res["baseline"] = b
            if b.get("available"):
                res["baseline_steps_per_second"] = b["steps_per_second"]
                res["ratio"] = res["steps_per_second"] / b["steps_per_second"]
        return res
    finally:
        torch.set_num_threads(old_threads)


def _peak_fields(device: str, achieved: float, dtype) -> dict:
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        table = cuda_table_peak(name)
        practical = matmul_flops("cuda", torch.bfloat16, n=8192)
        peak = table or practical
        return {"peak_flops_per_second": peak,
                "peak_source": (f"data-sheet dense bf16 peak for {name!r}" if table else
                                f"{name!r} not in the table: measured 8192^3 bf16 matmul"),
                "peak_fraction": achieved / peak,
                "practical_peak_flops_per_second": practical,
                "practical_peak_fraction": achieved / practical}
    practical = matmul_flops("cpu", torch.float32)
    out = {"peak_flops_per_second": practical,
           "peak_source": (f"practical peak: 2048^3 fp32 matmul measured in this process with "
                           f"{torch.get_num_threads()} threads"),
           "peak_fraction": achieved / practical}
    if dtype is not None:
        p16 = matmul_flops("cpu", dtype)
        out.update({"practical_peak_bf16_flops_per_second": p16,
                    "peak_fraction_bf16": achieved / p16})
    theo = cpu_theoretical_peak(torch.get_num_threads())
    if theo:
        out.update({"theoretical_peak_flops_per_second": theo["flops_per_second"],
                    "theoretical_peak_source": (f"{theo['cores']} cores x {theo['ghz']:.2f} GHz "
                                                f"(nominal; turbo may exceed it) "
                                                f"x {theo['flops_per_cycle']} FLOPs/cycle "
                                                f"({theo['isa']})"),
                    "theoretical_peak_fraction": achieved / theo["flops_per_second"]})
    return out


def _si(x: float, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    for k, s in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= k:
            return f"{x / k:.3g} {s}{unit}"
    return f"{x:.3g} {unit}"


def format_report(r: dict) -> str:
    m = r["model"]
    lines = [
        f"grokbook bench: preset {r.get('preset')}, {r['device_name']} ({r['device']}, "
        f"{r['threads']} threads, {r['precision']}"
        f"{', torch.compile' if r['options']['compile'] else ''})",
        f"  model: {m['n_layer']} layers x {m['n_loops']} loops, d_model {m['d_model']}, "
        f"{m['n_head']} heads, vocab {m['vocab_size']}; batch {r['batch_size']}; "
        f"{r['repeats']} x {r['steps']} steps after {r['warmup']} warm-up",
        f"  steps/s      {r['steps_per_second']:.2f}   (repeats: "
        f"{', '.join(f'{x:.2f}' for x in r['steps_per_second_repeats'])})",
        f"  tokens/s     {_si(r['tokens_per_second'])}  ({r['seq_len']} positions per example)",
        f"  FLOP/s       {_si(r['flops_per_second'], 'FLOP/s')}  "
        f"({_si(r['flops_per_step'], 'FLOP')} per step)",
    ]
    if r["options"].get("compile_error"):
        lines.append(f"  compile      {r['options']['compile_error']}")
    if "peak_fraction" in r:
        lines.append(f"  of peak      {100 * r['peak_fraction']:.1f}% of "
                     f"{_si(r['peak_flops_per_second'], 'FLOP/s')} ({r['peak_source']})")
    if "theoretical_peak_fraction" in r:
        lines.append(f"               {100 * r['theoretical_peak_fraction']:.1f}% of "
                     f"{_si(r['theoretical_peak_flops_per_second'], 'FLOP/s')} theoretical "
                     f"({r['theoretical_peak_source']})")
    lines.append(f"  peak memory  {_si(r['peak_memory_bytes'], 'B')} "
                 f"(+{_si(r['peak_memory_increase_bytes'], 'B')}; {r['memory_method']})")
    if "step_split" in r:
        s = r["step_split"]
        lines.append("  step split   " + ", ".join(
            f"{k[:-3]} {s[k]:.2f} ms" for k in ("step_ms", "data_ms", "forward_ms",
                                                 "backward_ms", "optimizer_ms", "other_ms",
                                                 "fixed_step_ms")))
    b = r.get("baseline")
    if b is not None:
        if b.get("available"):
            lines += [
                f"  Wang-style   {b['steps_per_second']:.2f} steps/s ({b['stack']}, "
                f"{b['seq_len']} tokens, vocab {b['vocab_size']}, {b['precision']}, "
                f"{_si(b['flops_per_second'], 'FLOP/s')} of hardware work, "
                f"peak memory {_si(b['peak_memory_bytes'], 'B')})",
                f"  ratio        {r['ratio']:.2f}x grokbook / Wang-style steps per second"]
        else:
            lines.append(f"  Wang-style   skipped: {b['reason']}")
    return "\n".join(lines)


# ------------------------------------------------------------------ chapter 5's architectures
def bench_arch(preset_name: str = "cpu", steps: int = 30, warmup: int = 5, repeats: int = 3,
               archs=("looped", "trm"), regime: str = "natural") -> dict:
    """Training steps per second of each architecture at chapter 5's config:
    ``warmup`` steps, then the median over ``repeats`` of ``steps`` timed steps."""
    cfgs = chapter_configs(preset_name, [regime], archs)
    out = {"preset": preset_name, "steps": steps, "repeats": repeats,
           "threads": torch.get_num_threads()}
    for (_, arch), cfg in cfgs.items():
        device = resolve_device(cfg.train.device)
        tr = Trainer(cfg, build_dataset(cfg.data, cfg.seed), device)
        for _ in range(warmup):
            tr.train_step()
        sps = statistics.median(_time_steps(tr.train_step, device, steps, repeats))
        out[arch] = {"steps_per_second": round(sps, 2),
                     "max_steps": cfg.train.max_steps,
                     "est_run_seconds": round(cfg.train.max_steps / sps, 1),
                     "params": tr.model.num_params(),
                     "flops_per_step": float(tr.model.flops_per_step(cfg.train.batch_size))}
    return out


# ------------------------------------------------------------------ many runs at once
def _group_rate(cfg_dicts: list, steps: int, repeats: int, warmup: int, threads: int) -> float:
    """Steps/s of one stacked group (every member steps each time), on ``threads`` threads."""
    torch.set_num_threads(threads)
    cfgs = [Config.from_dict(d) for d in cfg_dicts]
    ds = build_dataset(cfgs[0].data, cfgs[0].seed)   # the data's content does not change speed
    tr = Trainer(cfgs, [ds] * len(cfgs), resolve_device(cfgs[0].train.device))
    for _ in range(warmup):
        tr.train_step()
    return statistics.median(_time_steps(tr.train_step, tr.device, steps, repeats))


def bench_many(preset_name: str = "cpu", ks=(1, 2, 4, 8, 16),
               archs=("dense", "looped", "trm"), steps: int = 20, repeats: int = 3,
               warmup: int = 3, processes: int = 1, threads: int = 1) -> dict:
    """Total training steps/s of K runs trained together, for chapter 5's architectures:
    one stacked group of K members per process (``processes`` groups of K / processes
    members running at once, ``threads`` threads each). ``speedup`` is the total against
    one run alone (K = 1, one process)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    out = {"preset": preset_name, "processes": processes, "threads": threads, "steps": steps,
           "repeats": repeats, "archs": {}}
    cfgs = chapter_configs(preset_name, ["natural"], archs)
    for (_, arch), base in cfgs.items():
        rows, solo = {}, None
        for k in ks:
            per = max(1, k // processes) if k >= processes else k
            n_proc = max(1, k // per) if k >= processes else 1
            groups = [[base.replace(seed=i * per + j).to_dict() for j in range(per)]
                      for i in range(n_proc)]
            if n_proc == 1:
                rates = [_group_rate(groups[0], steps, repeats, warmup, threads)]
            else:
                with ProcessPoolExecutor(n_proc, mp_context=mp.get_context("spawn")) as ex:
                    rates = list(ex.map(_group_rate, groups, [steps] * n_proc,
                                        [repeats] * n_proc, [warmup] * n_proc,
                                        [threads] * n_proc))
            total = sum(r * len(g) for r, g in zip(rates, groups))
            solo = solo or (total if k == 1 else None)
            rows[k] = {"group_steps_per_second": [round(r, 2) for r in rates],
                       "members_per_process": per, "processes": n_proc,
                       "total_steps_per_second": round(total, 2),
                       "speedup": round(total / solo, 2) if solo else None}
        out["archs"][arch] = rows
    return out
