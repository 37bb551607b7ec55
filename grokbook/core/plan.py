"""Runs declared as data, and one scheduler that trains them as a dependency graph.

A chapter declares every run it reads as a ``Planned`` entry of a ``Plan``: a name, a
role, and either a config known in advance or a ``build`` from the runs it comes
``after`` (a fine-tune starts from a checkpoint of its parent), optionally trained only
``when`` a condition on those runs holds (a control trained only if the subject grokked).
Two entries whose configs are equal are one run: the store names runs by their config.

``resolve(plan)`` walks the graph: stored runs are read, the others trained by a pool of
workers (one process per run, one thread each, the largest predicted cost first; or a
Ray cluster, ``chapters.ray_executor.RayExecutor``), and what becomes of every entry is
an ``Outcome``: stored, trained, skipped (with the reason: a condition that did not hold,
a parent that was not trained) or failed (with the error). With ``train=False`` nothing
trains and a run not in the store is "missing": a chapter of a built book only reads.

Predicted cost: ``predict(cfg)`` is the seconds a run takes on this machine, from the
measured speed of its shape (``measure_rate``: a few timed steps and one timed evaluation,
kept per machine in the store's ``rates.json``) times its steps and evaluations; a run
with a stop rule may end sooner (its prediction is an upper bound).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .config import Config
from .store import (ProcessPool, Run, RunStoreError, atomic_json, resolved, run_id,
                    store_path, train_many)
from .train import eval_steps, thread_count

STORED, TRAINED, SKIPPED, FAILED, MISSING = "stored", "trained", "skipped", "failed", "missing"
WAITING = "waiting"     # (train=False) comes after a run that is not in the store yet


@dataclass
class Planned:
    """One run a chapter reads."""
    name: str                       # unique in a plan, e.g. "02/subject/seed 41"
    chapter: str                    # "02"
    role: str                       # subject, seed, contrast, sweep, control, regime, ...
    config: Config | None = None    # known in advance; else ``build`` makes it
    after: tuple = ()               # names of entries trained first
    build: Callable | None = None   # build({name: Run}) -> Config, or None (not needed)
    when: Callable | None = None    # when({name: Run or None}) -> bool: trained only if True
                                    # (with a ``when``, a parent that has no run does not skip
                                    # the entry: ``when`` sees it as None and decides)
    note: str = ""                  # what ``after`` / ``when`` mean, in words
    like: Config | None = None      # for a built entry: a config of its shape and length
    labels: dict = field(default_factory=dict)   # columns a chapter's tables show


class PlanError(ValueError):
    """A plan that cannot be walked (a duplicate name, an unknown parent, a cycle)."""


class Plan:
    """An ordered collection of ``Planned`` entries (names unique)."""

    def __init__(self, entries=()):
        self.entries: dict[str, Planned] = {}
        for e in entries:
            self.add(e)

    def add(self, entry: Planned) -> Planned:
        if entry.name in self.entries:
            raise PlanError(f"plan: the name {entry.name!r} is declared twice")
        if entry.config is None and entry.build is None:
            raise PlanError(f"plan: {entry.name!r} has neither a config nor a build")
        self.entries[entry.name] = entry
        return entry

    def extend(self, other) -> "Plan":
        """Add ``other``'s entries; one already here under the same name must be the same
        run (a chapter repeating another chapter's entry it reads)."""
        for e in other:
            mine = self.entries.get(e.name)
            if mine is None:
                self.entries[e.name] = e
            elif mine.config is not None and e.config is not None and \
                    mine.config.hash() != e.config.hash():
                raise PlanError(f"plan: {e.name!r} is declared twice with different configs")
        return self

    def __iter__(self):
        return iter(self.entries.values())

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, name: str) -> Planned:
        return self.entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self, chapter: str | None = None, role: str | None = None) -> list[str]:
        return [e.name for e in self if (chapter is None or e.chapter == chapter)
                and (role is None or e.role == role)]

    def closure(self, names) -> "Plan":
        """The entries ``names`` and every entry they come after, in plan order."""
        want, todo = set(), list(names)
        while todo:
            n = todo.pop()
            if n in want:
                continue
            if n not in self.entries:
                raise PlanError(f"plan: no entry {n!r}")
            want.add(n)
            todo += list(self.entries[n].after)
        return Plan(e for e in self if e.name in want)

    def check(self) -> None:
        """Every parent exists and the graph has no cycle."""
        for e in self:
            for a in e.after:
                if a not in self.entries:
                    raise PlanError(f"plan: {e.name!r} comes after {a!r}, which is not "
                                    f"in the plan")
        seen, stack = set(), set()

        def visit(n):
            if n in stack:
                raise PlanError(f"plan: a cycle through {n!r}")
            if n in seen:
                return
            stack.add(n)
            for a in self.entries[n].after:
                visit(a)
            stack.discard(n)
            seen.add(n)
        for n in self.entries:
            visit(n)


@dataclass
class Outcome:
    """What became of one entry."""
    name: str
    status: str                     # stored, trained, skipped, failed, missing
    run: Run | None = None
    run_id: str | None = None
    reason: str = ""
    config: Config | None = None


# ---------------------------------------------------------------- predicted cost
RATES_FILE = "rates.json"
# Raised whenever the library's own cost of a run changes (evaluation in smaller passes: 2),
# so a rate measured by an older library is measured again, not used.
COST_VERSION = 2


def machine_key(threads: int | None = None) -> str:
    """This machine's processor, cores and the thread count a run uses."""
    from .store import device_name
    name = device_name("cpu").split(" (")[0]
    return f"{name} | {os.cpu_count()} cores | {thread_count(threads)} thread(s)"


def shape_key(cfg: Config) -> str:
    """What a step's cost depends on: the model, the batch, the vocabulary, the device."""
    m, t, d = cfg.model, cfg.train, cfg.data
    return json.dumps({"model": {k: v for k, v in vars(m).items() if k != "init_scale"},
                       "batch": t.batch_size, "entities": d.n_entities,
                       "relations": d.n_relations, "device": t.device,
                       "precision": t.precision, "ema": t.ema > 0}, sort_keys=True)


def _rates(store) -> dict:
    p = store_path(store, create=False) / RATES_FILE
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def measure_rate(cfg: Config, steps: int = 12, warmup: int = 3) -> dict:
    """Seconds per training step and per evaluated probe query of ``cfg``'s shape, timed here
    on the thread count runs use (its dataset built, nothing stored)."""
    from .newknowledge import dataset_for
    from .train import Trainer
    cfg = resolved(cfg)
    before = torch.get_num_threads()
    torch.set_num_threads(thread_count())
    try:
        ds = dataset_for(cfg)
        tr = Trainer(cfg, ds, cfg.train.device)
        for _ in range(warmup):
            tr.train_step()
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step()
        step = (time.perf_counter() - t0) / steps
        t0 = time.perf_counter()
        tr.probes.evaluate(tr.eval_model, autocast=tr.autocast)
        per_query = (time.perf_counter() - t0) / max(1, sum(tr.probes.n))
    finally:
        torch.set_num_threads(before)
    return {"step_seconds": step, "eval_seconds_per_query": per_query}


def rate_of(cfg: Config, store=None, measure: bool = True, threads: int | None = None):
    """The measured rate of ``cfg``'s shape on this machine (from the store's ``rates.json``,
    measured now and kept there when absent and ``measure``); None when not measured."""
    key = f"{machine_key(threads)} || cost v{COST_VERSION} || {shape_key(resolved(cfg))}"
    rates = _rates(store)
    if key in rates:
        return rates[key]
    if not measure:
        return None
    r = measure_rate(cfg)
    rates = _rates(store)
    rates[key] = r
    try:
        atomic_json(store_path(store) / RATES_FILE, rates)
    except (OSError, RunStoreError):
        pass          # a read-only store: measured again next time
    return r


def probe_queries(cfg: Config) -> int:
    """How many probe queries one evaluation of ``cfg`` reads."""
    from .newknowledge import dataset_for
    from .tables import n_rows
    ds = dataset_for(resolved(cfg))
    return sum(n_rows(t) for t in ds.probes.values())


def predict(cfg: Config, store=None, measure: bool = True) -> float | None:
    """Seconds a whole run of ``cfg`` takes on this machine (all its steps and evaluations;
    a stop rule may end it sooner); None when its shape's rate is not measured."""
    r = rate_of(cfg, store, measure)
    if r is None:
        return None
    t = cfg.train
    evals = len(eval_steps(t))
    return t.max_steps * r["step_seconds"] + evals * probe_queries(cfg) * \
        r["eval_seconds_per_query"]


# ---------------------------------------------------------------- pools of workers
class InlinePool:
    """Trains one run at a time in this process (one worker, or a test)."""
    capacity = 1

    def __init__(self, root: Path, threads: int | None = None):
        self.root, self.threads, self.queue = root, threads, []

    def submit(self, key: str, cfg: Config):
        self.queue.append((key, cfg))

    def wait(self) -> list:
        """[(key, error or None)] of the runs that finished."""
        key, cfg = self.queue.pop(0)
        try:
            train_many([cfg], store=self.root, progress=False, workers=1,
                       threads=self.threads)
            return [(key, None)]
        except Exception as e:  # noqa: BLE001 - the outcome says what failed
            return [(key, e)]

    @property
    def busy(self) -> int:
        return len(self.queue)

    def close(self):
        self.queue.clear()


class RunPool:
    """``store.ProcessPool`` for one run per process: ``submit(key, config)``, ``wait()``
    -> [(key, error or None)]."""

    def __init__(self, root: Path, workers: int, threads: int | None = None):
        self.pool = ProcessPool(root, workers, thread_count(threads))
        self.capacity = workers

    @property
    def busy(self) -> int:
        return self.pool.busy

    def submit(self, key: str, cfg: Config):
        self.pool.submit(key, [(run_id(cfg), cfg)])

    def wait(self) -> list:
        return [(key, errs[0] if errs else None) for key, errs in self.pool.wait()]

    def close(self):
        self.pool.close()


def default_pool(root: Path, workers: int | None = None, threads: int | None = None):
    from .store import default_workers
    workers = default_workers() if workers is None else workers
    return RunPool(root, workers, threads) if workers > 1 else InlinePool(root, threads)


# ---------------------------------------------------------------- the scheduler
def resolve(plan: Plan, store=None, train: bool = True, workers: int | None = None,
            threads: int | None = None, pool=None, report: Callable | None = None,
            cost: Callable | None = None) -> dict:
    """{name: Outcome} for every entry of ``plan``: stored runs read, the others trained
    (``train``) in ``pool`` (default: ``workers`` processes, one thread each) as soon as
    the runs they come after are done, the largest ``cost(cfg)`` first (default: FLOPs).
    ``report(outcome, done, total)`` hears of every entry as it is settled. With
    ``train=False`` a run not in the store is "missing" and what comes after it
    "waiting"."""
    plan.check()
    root = store_path(store, create=False)
    out: dict[str, Outcome] = {}
    pending = list(plan)
    queue: dict[str, tuple] = {}        # run id -> (config, [names])
    costs: dict[str, float] = {}
    running: dict[str, tuple] = {}
    cost = cost or _flops
    pool_ = None

    def settle(o: Outcome):
        out[o.name] = o
        if report is not None:
            report(o, len(out), len(plan))

    def complete(rid):
        return (root / "runs" / rid / "COMPLETE").exists()

    try:
        while pending or queue or running:
            moved = True
            while moved:
                moved = False
                for e in list(pending):
                    if not all(a in out for a in e.after):
                        continue
                    pending.remove(e)
                    moved = True
                    o, cfg = _ready(e, out, complete, root, train)
                    if o is not None:
                        settle(o)
                        continue
                    cfg = resolved(cfg)           # as it will run: the device named
                    rid = run_id(cfg)
                    if rid in running:
                        running[rid][1].append(e.name)
                    else:
                        queue.setdefault(rid, (cfg, []))[1].append(e.name)
                        if rid not in costs:
                            costs[rid] = cost(cfg) or 0.0
            if queue and pool_ is None:
                store_path(store)        # training needs a writable store
                pool_ = pool or default_pool(root, workers, threads)
            for rid in sorted(queue, key=lambda r: -costs[r]):
                if pool_.busy >= pool_.capacity:
                    break
                cfg, names = queue.pop(rid)
                pool_.submit(rid, cfg)
                running[rid] = (cfg, names)
            if running:
                for rid, err in pool_.wait():
                    cfg, names = running.pop(rid)
                    for n in names:
                        if err is None and complete(rid):
                            settle(Outcome(n, TRAINED, Run(root / "runs" / rid), rid,
                                           config=cfg))
                        else:
                            settle(Outcome(n, FAILED, None, rid, config=cfg, reason=(
                                f"{type(err).__name__}: {err}" if err else
                                "the worker ended without completing the run")))
            elif pending and not queue:
                raise PlanError("plan: entries wait on runs that never settle: "
                                + ", ".join(e.name for e in pending[:5]))
    finally:
        if pool_ is not None and pool is None:
            pool_.close()
    return {e.name: out[e.name] for e in plan}


def _ready(e: Planned, out: dict, complete, root: Path, train: bool) -> tuple:
    """(the entry's outcome when it needs no training: skipped, stored, missing; else None,
    and its config)."""
    parents = {a: out[a] for a in e.after}
    unknown = [a for a, o in parents.items() if o.status in (MISSING, WAITING)]
    if unknown:
        return Outcome(e.name, WAITING, reason=f"comes after {', '.join(unknown)}"), None
    lacking = [a for a, o in parents.items() if o.run is None]
    if lacking and e.when is None:
        return Outcome(e.name, SKIPPED, reason=f"comes after {', '.join(lacking)}, which "
                                               f"{'was' if len(lacking) == 1 else 'were'} "
                                               f"not trained"), None
    runs = {a: o.run for a, o in parents.items()}
    if e.when is not None and not e.when(runs):
        return Outcome(e.name, SKIPPED, reason=e.note or "its condition did not hold"), None
    cfg = e.config if e.build is None else e.build(runs)
    if cfg is None:
        return Outcome(e.name, SKIPPED, reason=e.note or "not needed"), None
    rid = run_id(cfg)
    if complete(rid):
        return Outcome(e.name, STORED, Run(root / "runs" / rid), rid, config=cfg), cfg
    if not train:
        return Outcome(e.name, MISSING, None, rid, config=cfg,
                       reason="not in the store (train the plan first: grokbook book "
                              "trains it)"), cfg
    return None, cfg


def _flops(cfg: Config) -> float:
    from .progress import work_of
    return work_of(cfg) or 0.0


def runs_of(outcomes: dict) -> dict:
    """{name: Run} of the entries that have a run."""
    return {n: o.run for n, o in outcomes.items() if o.run is not None}


def eta_minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{math.ceil(seconds)} s"


class PlanRunError(RuntimeError):
    """A run a chapter reads failed to train, or is missing from a store it may not train."""


def plan_runs(plan: Plan, names=None, store=None, train: bool = True,
              workers: int | None = None) -> dict:
    """{name: Run, or None where the entry was skipped} for ``names`` (default: every
    entry) and what they come after, from the store or trained (``train``). An entry that
    failed, or is missing where nothing may train, is a ``PlanRunError`` naming it."""
    names = list(plan.entries if names is None else names)
    out = resolve(plan.closure(names), store, train=train, workers=workers)
    bad = [o for o in out.values() if o.status in (FAILED, MISSING, WAITING)]
    if bad:
        raise PlanRunError("; ".join(f"{o.name}: {o.status} ({o.reason})" for o in bad[:3]))
    return {n: out[n].run for n in names}
