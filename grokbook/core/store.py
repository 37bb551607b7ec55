"""The run store: ``train(config)`` returns a stored run, resumes one, or trains one.

Layout of a run (``<store>/runs/<id>/``)::

    config.json     the full config (its hash is the id)
    state.pt        resume state at the last checkpoint (removed when complete)
    ckpt/<step>.pt  evaluated weights at each checkpoint step
    metrics.json    tidy table: step, split, loss, accuracy
    timeline.json   step -> wall seconds (kept apart: it is the only non-deterministic column)
    info.json       device, versions, wall time, steps/s
    COMPLETE        written last, atomically: only then is the run served as complete

Every file is written to a temporary name and renamed. A lock file per run keeps two
processes from training the same run at once; the second waits and then reads it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch

from .arch import build_model, flops_per_step
from .config import Config, ConfigError, validate
from .data import json_digest
from .newknowledge import dataset_for
from .progress import emit
from .train import (Trainer, TrainingDiverged, group_key, resolve_device, run_loop,
                    thread_count)

__all__ = ["Run", "RunStoreError", "train", "train_many", "load_run", "store_path", "list_runs",
           "run_id"]

RUN_ID = re.compile(r"[0-9a-f]{12}")


class RunStoreError(RuntimeError):
    """The store or a stored run cannot be used. The message says which path and what to do."""


def store_path(store=None, create: bool = True) -> Path:
    """The store's folder; ``create`` makes ``runs/`` in it (a read-only store is still
    readable with ``create=False``). Every failure is a RunStoreError naming the path."""
    p = Path(store or os.environ.get("GROKBOOK_STORE") or Path.home() / ".cache" / "grokbook")
    p = p.expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise RunStoreError(f"the run store {p} is a file, not a folder: point GROKBOOK_STORE "
                            f"(or --store) at a folder")
    if create and not (p / "runs").is_dir():
        try:
            (p / "runs").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunStoreError(f"cannot create the run store at {p} ({e.strerror}): choose a "
                                f"writable folder with GROKBOOK_STORE or --store") from None
    return p


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def _share(path: str) -> None:
    """mkstemp makes 0600 files; give them the permissions any new file would have, so a
    store shared between users (a lab folder, a container with another uid) stays readable."""
    os.chmod(path, 0o666 & ~_umask())


def resolved(cfg: Config) -> Config:
    """The config as it will run: ``train.device = auto`` resolved to this machine, and a
    ``data.from_json`` folder made absolute (the run must load from any directory)."""
    over = {"train.device": resolve_device(cfg.train.device)}
    if cfg.data.from_json:
        over["data.from_json"] = str(Path(cfg.data.from_json).expanduser().absolute())
    return cfg.replace(**over)


def run_id(cfg: Config) -> str:
    cfg = resolved(cfg)
    rid = cfg.hash()
    if cfg.data.from_json:  # the data's content, not only its path, names the run
        rid = hashlib.sha256((rid + json_digest(cfg.data.from_json)).encode()).hexdigest()[:12]
    return rid


def _atomic_write(path: Path, data: bytes):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        _share(tmp)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_json(path: Path, obj):
    _atomic_write(path, json.dumps(obj, indent=1, allow_nan=True).encode())


def _atomic_torch(path: Path, obj):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        _share(tmp)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _lock(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
    except OSError as e:
        raise RunStoreError(f"cannot train into the run store {path.parent.parent}: it is not "
                            f"writable here ({e.strerror}). Stored runs can still be read; to "
                            f"train, use a writable store (GROKBOOK_STORE or --store)") from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _locked_by_trainer(lock: Path) -> bool:
    """True when another process holds the run's lock (it is training that run now)."""
    if not lock.exists():
        return False
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _unreadable(path: Path, e: OSError) -> RunStoreError:
    return RunStoreError(
        f"cannot read the stored run at {path}: {e.strerror} ({e.filename}). The run is "
        f"not corrupt; ask its owner to make the store readable to you (e.g. `chmod -R a+rX "
        f"{path}`), or use a store of your own with GROKBOOK_STORE")


def _corrupt(path: Path, why: str) -> RunStoreError:
    return RunStoreError(
        f"stored run at {path} is corrupt ({why}). Nothing was changed. Remove that one run "
        f"with `rm -rf {path}` (or `grokbook runs rm {path.name}`) and ask for it again; "
        f"the rest of the store is unaffected.")


INFO_KEYS = ("wall_seconds", "steps_per_second")


class Run:
    """A complete run: config, metrics, checkpoints."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.id = self.path.name
        try:
            self.complete = json.loads((self.path / "COMPLETE").read_text())
            self.config = Config.from_dict(json.loads((self.path / "config.json").read_text()))
            self.metrics = pd.DataFrame(json.loads((self.path / "metrics.json").read_text()),
                                        columns=["step", "split", "loss", "accuracy"])
            self.timeline = pd.DataFrame(json.loads((self.path / "timeline.json").read_text()),
                                         columns=["step", "wall_seconds"])
            self.info = json.loads((self.path / "info.json").read_text())
            lacking = [k for k in INFO_KEYS if k not in self.info]
            if lacking:
                raise ValueError(f"info.json lacks {', '.join(lacking)}")
            sizes = {int(k): v for k, v in self.complete.get("sizes", {}).items()}
            bad = []
            for s in self.complete["checkpoints"]:
                f = self.path / "ckpt" / f"{s:08d}.pt"
                if not f.exists() or (s in sizes and f.stat().st_size != sizes[s]):
                    bad.append(s)
        except PermissionError as e:
            raise _unreadable(self.path, e) from None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise _corrupt(self.path, f"{type(e).__name__}: {e}") from None
        if bad:
            raise _corrupt(self.path, f"checkpoint files missing or truncated for steps {bad[:5]}")
        if self.metrics.empty:
            raise _corrupt(self.path, "empty metrics table")

    def __repr__(self):
        return f"Run({self.id}, steps={self.steps}, {self.path})"

    @property
    def steps(self) -> int:
        return int(self.metrics["step"].max())

    @property
    def checkpoints(self) -> list[int]:
        return list(self.complete["checkpoints"])

    @cached_property
    def dataset(self):
        return dataset_for(self.config)

    def load_model(self, step: int | None = None, device: str = "cpu"):
        """The evaluated weights at a checkpoint step (the nearest stored one at or before)."""
        steps = self.checkpoints
        if step is None:
            step = steps[-1]
        eligible = [s for s in steps if s <= step]
        s = eligible[-1] if eligible else steps[0]
        model = build_model(self.config, len(self.dataset.vocab))
        try:
            weights = torch.load(self.path / "ckpt" / f"{s:08d}.pt", map_location=device,
                                 weights_only=True)
        except PermissionError as e:
            raise _unreadable(self.path, e) from None
        except Exception as e:  # torch raises many kinds here
            raise _corrupt(self.path, f"checkpoint {s}: {type(e).__name__}: {e}") from None
        model.load_state_dict(weights)
        return model.to(device).eval()

    def accuracy(self) -> pd.DataFrame:
        """Wide table: one row per evaluated step, one column per probe set."""
        m = self.metrics[self.metrics.split != "train"]
        return m.pivot(index="step", columns="split", values="accuracy")

    def summary(self) -> dict:
        """Id, length, speed, model and final accuracies (``analysis.definitions.run_summary``
        adds the memorized and grokked steps)."""
        acc = self.accuracy()
        final = {k: round(float(v), 4) for k, v in acc.iloc[-1].items()}
        m = self.config.model
        model = {"arch": m.arch, "n_layer": m.n_layer, "d_model": m.d_model}
        model.update({"n_loops": m.n_loops} if m.arch == "transformer" else
                     {"inner_steps": m.trm_inner_steps, "cycles": m.trm_cycles})
        return {"run": self.id, "steps": self.steps,
                "wall_seconds": round(self.info["wall_seconds"], 2),
                "steps_per_second": round(self.info["steps_per_second"], 2),
                "model": model, "final": final}


def _run_dirs(store=None) -> list[Path]:
    root = store_path(store, create=False) / "runs"
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and RUN_ID.fullmatch(p.name))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise RunStoreError(f"cannot list the run store {root}: {e.strerror}") from None


def list_runs(store=None) -> list[str]:
    return [p.name for p in _run_dirs(store) if (p / "COMPLETE").exists()]


def load_run(rid: str, store=None) -> Run:
    if not RUN_ID.fullmatch(str(rid)):
        raise RunStoreError(f"run id {rid!r}: expected 12 hex digits, as `grokbook runs ls` "
                            f"prints them")
    path = store_path(store, create=False) / "runs" / rid
    if not (path / "COMPLETE").exists():
        raise RunStoreError(f"no complete run {rid!r} at {path}")
    return Run(path)


def train(cfg: Config, store=None, progress: bool = True, stop_after: int | None = None) -> Run:
    """Return the complete run of ``cfg``: from the store, resumed, or trained now."""
    return train_many([cfg], store, progress, stop_after)[0]


WORKERS_ENV = "GROKBOOK_WORKERS"


def default_workers() -> int:
    """Processes ``train_many`` spreads groups over: ``$GROKBOOK_WORKERS``, else 1 (the book
    pipeline sets it to the machine's cores for the chapters it executes)."""
    raw = os.environ.get(WORKERS_ENV, "1")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{WORKERS_ENV}: {raw!r} is not allowed; allowed: 1 or more processes")
    return n


def train_many(cfgs, store=None, progress: bool = True, stop_after: int | None = None,
               group_size: int | None = None, workers: int | None = None,
               threads: int | None = None) -> list:
    """The complete runs of ``cfgs``, in order: stored ones are read, the others trained
    ``group_size`` at a time as stacked groups (runs that share ``group_key``), each member
    stored as its own run (``core.ensemble``). ``group_size`` None: 1 on the CPU, where
    stacking buys nothing (1.03x at K = 8) and a member of a stacked group is bitwise its
    solo run only at small shapes (at the ``cpu`` preset's, weights differ by ~1e-6 after
    500 steps and the grokked step moved by 300): every CPU run is then trained as
    itself, whichever chapter asks. 16 on a GPU. ``workers`` > 1 trains independent
    groups in that many processes. Training uses ``thread_count(threads)`` threads per process (1 unless
    ``threads`` or ``$GROKBOOK_THREADS`` says otherwise). A member that diverges is not
    stored; the others are."""
    cfgs = [resolved(validate(c) or c) for c in cfgs]
    ids = [run_id(c) for c in cfgs]
    root = store_path(store, create=False)
    todo = {}
    for cfg, rid in zip(cfgs, ids):
        if (root / "runs" / rid / "COMPLETE").exists():
            emit(event="stored", run=rid)
        else:
            todo.setdefault(rid, cfg)
    if todo:
        store_path(store)  # training needs a writable store
        groups = {}
        for rid, cfg in todo.items():
            groups.setdefault(group_key(cfg), []).append((rid, cfg))
        workers = default_workers() if workers is None else workers
        on_cpu = all(c.train.device == "cpu" for c in todo.values()) or \
            not torch.cuda.is_available()
        if group_size is None:
            group_size = 1 if on_cpu else 16
            if workers > 1:  # give every worker a share (the numbers do not change)
                group_size = min(group_size, max(1, -(-len(todo) // workers)))
        chunks = [g[i:i + group_size] for g in groups.values()
                  for i in range(0, len(g), group_size)]
        errors, n, before = [], thread_count(threads), torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            if workers > 1 and len(chunks) > 1:
                errors = _train_in_processes(chunks, root, workers, n)
            else:
                for chunk in chunks:
                    errors += _train_group(chunk, root, progress, stop_after)
        finally:
            torch.set_num_threads(before)
        if errors:
            raise errors[0]
    return [Run(root / "runs" / rid) for rid in ids]


def _train_in_processes(chunks, root: Path, workers: int, threads: int) -> list:
    """Each chunk in a worker process (``ProcessPool``), ``workers`` at a time, the longest
    chunks first, so that short ones fill the cores while they run."""
    errors = []
    todo = sorted(enumerate(chunks), key=lambda ic: -sum(c.train.max_steps for _, c in ic[1]))
    pool = ProcessPool(root, workers, threads)
    try:
        while todo or pool.busy:
            while todo and pool.busy < pool.capacity:
                i, chunk = todo.pop(0)
                pool.submit(i, chunk)
            errors += [e for _, errs in pool.wait() for e in errs]
    finally:
        pool.close()
    return errors


class ProcessPool:
    """Trains groups of runs, each in a fresh ``python -m grokbook.core.worker`` process,
    ``workers`` at a time with ``threads`` threads each (no multiprocessing machinery: it is
    fragile inside a Jupyter kernel). ``submit(key, [(run id, config), ...])``; ``wait()``
    returns ``[(key, [errors])]`` of the groups that ended (whichever ends first frees its
    core); ``close()`` ends the ones still running."""

    def __init__(self, root: Path, workers: int, threads: int):
        self.root, self.capacity, self.threads = Path(root), workers, threads
        self.tmp = tempfile.TemporaryDirectory(prefix="grokbook-workers-")
        self.running, self.n = {}, 0

    @property
    def busy(self) -> int:
        return len(self.running)

    def submit(self, key, members) -> None:
        self.n += 1
        job = Path(self.tmp.name) / f"job{self.n}.json"
        job.write_text(json.dumps({"root": str(self.root), "threads": self.threads,
                                   "parent": os.getpid(), "members":
                                   [[rid, cfg.to_dict()] for rid, cfg in members]}))
        self.running[key] = (job, subprocess.Popen(
            [sys.executable, "-m", "grokbook.core.worker", str(job)]))

    def wait(self) -> list:
        while all(proc.poll() is None for _, proc in self.running.values()):
            time.sleep(0.2)
        done = []
        for key, (job, proc) in list(self.running.items()):
            if proc.poll() is not None:
                done.append((key, worker_errors(job, proc.returncode)))
                del self.running[key]
        return done

    def close(self) -> None:
        # an interrupt must not leave workers training while holding run locks
        for _, proc in self.running.values():
            proc.terminate()
            proc.wait()
        self.running.clear()
        self.tmp.cleanup()


def worker_errors(job: Path, code: int) -> list:
    out = job.with_suffix(".errors")
    report = json.loads(out.read_text()) if out.exists() else {}
    if report.get("refused"):  # a config the worker could not build: say which
        return [ConfigError(report["refused"])]
    if report.get("store"):
        return [RunStoreError(report["store"])]
    if code != 0:
        return [RunStoreError(f"a training worker failed (exit status {code}); its runs "
                              f"resume from their last checkpoints when asked for again")]
    return [TrainingDiverged(e) for e in report.get("diverged", [])]


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """End this worker when the process that started it (pid ``parent``) is gone (killed,
    even with -9, perhaps before this worker got here): a worker left behind would hold its
    run locks and the cores. Its runs resume from their last checkpoints when asked for
    again."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(3)
    threading.Thread(target=watch, daemon=True).start()


def worker_main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    _exit_with_parent(job.get("parent", os.getppid()))
    torch.set_num_threads(job["threads"])
    members = [(rid, Config.from_dict(d)) for rid, d in job["members"]]
    out = Path(job_path).with_suffix(".errors")
    try:
        errors = _train_group(members, Path(job["root"]), False, None)
    except (ConfigError, ValueError) as e:
        out.write_text(json.dumps({"refused": str(e)}))
        return 2
    except RunStoreError as e:
        out.write_text(json.dumps({"store": str(e)}))
        return 2
    out.write_text(json.dumps({"diverged": [str(e) for e in errors]}))
    return 0


def _init_weights(cfg: Config, store) -> dict | None:
    """Fine-tuning starts from the parent run's checkpoint ``<id>@<step>``; the parent must
    be trained on its own graph, with this config's graph and seed (the transfer set is
    built from them). Only ``data.phi`` may differ: the graph does not depend on it, so a
    floor model trained on atomic facts alone (phi 0) can start the same transfer set."""
    if not cfg.parent:
        return None
    rid, _, step = cfg.parent.partition("@")
    parent = load_run(rid, store)
    if parent.config.finetune:
        raise ConfigError(f"parent: run {rid} is itself fine-tuned; a transfer set starts "
                          "from a run trained on its own graph")
    if (dataclasses.replace(parent.config.data, phi=cfg.data.phi) != cfg.data
            or parent.config.seed != cfg.seed):
        raise ConfigError(f"parent: run {rid} has other data or seed than this config; use "
                          "grokbook.chapters.transfer.finetune_config(parent_run, step)")
    return parent.load_model(int(step) if step else None).state_dict()


def _train_group(members, root: Path, progress: bool, stop_after) -> list:
    """Train one group (runs sharing ``group_key``) under every member's lock. Returns the
    errors of members that could not be completed (divergence); raises for bad configs."""
    members = sorted(members, key=lambda m: m[0])
    with contextlib.ExitStack() as locks:
        for rid, _ in members:
            locks.enter_context(_lock(root / "locks" / f"{rid}.lock"))
        members = [(rid, cfg) for rid, cfg in members
                   if not (root / "runs" / rid / "COMPLETE").exists()]
        # data and starting weights first: a config that cannot be built leaves no folder
        datasets = [dataset_for(cfg) for _, cfg in members]
        inits = [_init_weights(cfg, root) for _, cfg in members]
        states = [_resume_state(root / "runs" / rid, cfg) for rid, cfg in members]
        errors = []
        by_step = {}
        for i, st in enumerate(states):
            # fresh runs (-1) never share a group with runs resumed at any step, 0 included
            by_step.setdefault(st["trainer"]["step"] if st else -1, []).append(i)
        for idx in by_step.values():
            errors += _train_members([members[i] for i in idx], [datasets[i] for i in idx],
                                     [inits[i] for i in idx], [states[i] for i in idx], root,
                                     progress, stop_after)
        return errors


def _resume_state(path: Path, cfg: Config):
    if not (path / "state.pt").exists():
        return None
    try:
        # generator states must stay on the CPU; the trainer moves tensors where they belong
        return torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    except Exception as e:
        raise _corrupt(path, f"resume state: {type(e).__name__}: {e}") from None


def _train_members(members, datasets, inits, states, root: Path, progress, stop_after) -> list:
    cfgs = [cfg for _, cfg in members]
    paths = [root / "runs" / rid for rid, _ in members]
    device = cfgs[0].train.device
    trainer = Trainer(cfgs, datasets, device, inits)
    for k, (path, cfg) in enumerate(zip(paths, cfgs)):
        (path / "ckpt").mkdir(parents=True, exist_ok=True)
        atomic_json(path / "config.json", cfg.to_dict())
        if states[k]:
            trainer.load_state(states[k]["trainer"], k)
    first = states[0] or {}
    wall_offset, timeline = first.get("wall_seconds", 0.0), list(first.get("timeline", []))
    solo = build_model(cfgs[0], len(datasets[0].vocab))
    step_flops = flops_per_step(solo, cfgs[0].train.batch_size)
    start = trainer.step

    def on_checkpoint(tr: Trainer, k: int, wall: float):
        _atomic_torch(paths[k] / "ckpt" / f"{tr.step:08d}.pt", tr.weights(k))
        _atomic_torch(paths[k] / "state.pt", {"trainer": tr.state(k), "wall_seconds": wall,
                                              "timeline": list(timeline)})

    def on_done(tr: Trainer, k: int, wall: float):
        path = paths[k]
        if tr.diverged[k]:
            shutil.rmtree(path, ignore_errors=True)  # it would diverge again: keep nothing
            return
        ckpts = sorted(int(p.stem) for p in (path / "ckpt").glob("*.pt"))
        atomic_json(path / "metrics.json", tr.rows[k])
        atomic_json(path / "timeline.json", list(timeline))
        atomic_json(path / "info.json", {
            "device": device_name(device), "torch": torch.__version__,
            "python": platform.python_version(), "wall_seconds": wall,
            "steps_per_second": (tr.step - start) / max(wall - wall_offset, 1e-9),
            "threads": torch.get_num_threads(),
            "group": {"size": tr.k, "members": [p.name for p in paths]},
            "n_params": solo.num_params(), "dataset": datasets[k].summary(),
            "flops_per_step": step_flops,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        sizes = {str(s): (path / "ckpt" / f"{s:08d}.pt").stat().st_size for s in ckpts}
        atomic_json(path / "COMPLETE", {"checkpoints": ckpts, "id": path.name, "sizes": sizes})
        (path / "state.pt").unlink(missing_ok=True)
        emit(event="end", run=path.name)

    for path in paths:
        emit(event="start", run=path.name, max_steps=cfgs[0].train.max_steps, step=start,
             flops_per_step=step_flops * len(paths))
    wall, done = run_loop(trainer, on_checkpoint, progress, stop_after, wall_offset, timeline,
                          report=lambda step, sps: emit(event="step", run=paths[-1].name,
                                                        step=step, sps=sps),
                          on_done=on_done)
    if not done:
        raise KeyboardInterrupt(f"stopped at step {trainer.step} (stop_after={stop_after}); "
                                f"state kept at the last checkpoint in "
                                f"{', '.join(str(p) for p in paths)}")
    return [TrainingDiverged(trainer.diverged[k], member=k) for k in range(trainer.k)
            if trainer.diverged[k]]


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def remove_run(rid: str, store=None) -> Path:
    """Delete one run, named by its id or a unique prefix of it (at least 4 hex digits).

    Anything else -- a path, an empty string, ``..``, an id that matches no run or several
    -- is refused with a RunStoreError and nothing is deleted; so is a run that a trainer
    holds locked right now. Returns the folder removed."""
    rid = str(rid)
    if not re.fullmatch(r"[0-9a-f]{4,12}", rid):
        raise RunStoreError(f"runs rm: {rid!r} is not a run id; give a run id (or a unique "
                            f"prefix of at least 4 of its hex digits) as `grokbook runs ls` "
                            f"prints it. Nothing was removed")
    root = store_path(store, create=False)
    hits = [p for p in _run_dirs(store) if p.name.startswith(rid)]
    if not hits:
        raise RunStoreError(f"runs rm: no run {rid!r} in the store {root}. Nothing was removed")
    if len(hits) > 1:
        raise RunStoreError(f"runs rm: {rid!r} matches {len(hits)} runs "
                            f"({', '.join(p.name for p in hits[:5])}); give more digits. "
                            f"Nothing was removed")
    path = hits[0]
    if _locked_by_trainer(root / "locks" / f"{path.name}.lock"):
        raise RunStoreError(f"runs rm: run {path.name} is being trained by another process "
                            f"right now; stop that process first. Nothing was removed")
    try:
        shutil.rmtree(path)
    except OSError as e:
        raise RunStoreError(f"runs rm: cannot remove {path} ({e.strerror})") from None
    return path
