"""Progress a person can read while a chapter trains inside a papermill kernel.

The kernel's output cannot carry it (nbval compares outputs, and tqdm in a kernel reaches
no terminal), so the run store's ``train`` appends one JSON line per event to the file
named by ``$GROKBOOK_PROGRESS`` -- nothing is written when it is unset. The book
pipeline sets it per chapter and ``Watcher`` prints a line from it now and then:
which chapter, which run of how many, steps done, and the time left, estimated from
the measured steps/s and each planned run's FLOPs.

Functions that train several runs announce them with ``plan(configs)``, so that a
line can say "run 3 of 7" and how much work is left after the current run.
"""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .arch import build_model, flops_per_step

ENV = "GROKBOOK_PROGRESS"


def emit(**event) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    event["time"] = time.time()
    try:
        with open(path, "a") as f:
            f.write(json.dumps(event) + "\n")
    except OSError:  # progress is a courtesy: never fail a run over it
        pass


def work_of(cfg) -> float | None:
    """Training FLOPs of a whole run of ``cfg`` (from the model's shape; no data built)."""
    if cfg.data.from_json:
        return None
    vocab = cfg.data.n_entities + cfg.data.n_relations + 2
    return cfg.train.max_steps * flops_per_step(build_model(cfg, vocab), cfg.train.batch_size)


@contextmanager
def plan(configs, label: str = "runs"):
    """Announce the runs a step of a chapter is about to ask for (stored ones included)."""
    configs = list(configs)
    if os.environ.get(ENV):
        emit(event="plan", label=label, n=len(configs), work=[work_of(c) for c in configs])
    try:
        yield
    finally:
        emit(event="plan_end", label=label)


# ---------------------------------------------------------------- the reader
def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


class Status:
    """Folds events into one line of text. Several runs can be in progress at once (the
    members of a group, groups in parallel worker processes): each is followed by its id,
    and the line names the one that reported last."""

    def __init__(self):
        self.plan = None          # {"n": int, "work": [...], "done": int}
        self.runs = {}            # id -> the run's latest state, for runs in progress
        self.current = None       # the id that reported last

    @property
    def run(self):
        if self.current in self.runs:
            return self.runs[self.current]
        return next(reversed(self.runs.values()), None)

    def feed(self, e: dict) -> bool:
        """Take one event; True when it is worth a line at once (a new run's first speed)."""
        kind, rid = e.get("event"), e.get("run")
        if kind == "plan":
            self.plan = {"n": e["n"], "work": e.get("work") or [], "done": 0}
        elif kind == "plan_end":
            self.plan = None
        elif kind in ("start", "stored"):
            if self.plan is not None:
                self.plan["done"] += 1
            if kind == "start":
                self.runs[rid] = dict(e)
        elif kind == "step" and rid in self.runs:
            r = self.runs[rid]
            first = not r.get("sps")
            r.update(step=e["step"], sps=e.get("sps"))
            self.current = rid
            return first and bool(e.get("sps"))
        elif kind == "end":
            self.runs.pop(rid, None)
        return False

    def line(self) -> str | None:
        r = self.run
        if r is None:
            return None
        which = (f"run {self.plan['done']} of {self.plan['n']}" if self.plan else "run")
        text = f"{which} ({r['run']}): step {r.get('step', 0):,}/{r['max_steps']:,}"
        sps = r.get("sps")
        if sps:
            left = (r["max_steps"] - r.get("step", 0)) / sps
            text += f", {sps:.1f} steps/s, ~{_minutes(left)} left in this run"
            rest = self._rest_seconds(r, sps)
            if rest:
                text += f", ~{_minutes(left + rest)} for the runs planned"
        if len(self.runs) > 1:
            text += f" ({len(self.runs)} runs in progress)"
        return text

    def _rest_seconds(self, r, sps) -> float | None:
        """The planned runs not started yet (in the plan's order, which is the order they
        start in), at this run's measured FLOP/s times the runs in progress side by side
        (one per worker). An upper bound for runs that end once they grok."""
        p = self.plan
        if not p or not r.get("flops_per_step"):
            return None
        rest = [w for w in p["work"][p["done"]:] if w]
        side_by_side = max(1, len(self.runs))
        return sum(rest) / (sps * r["flops_per_step"] * side_by_side) if rest else None


class Watcher:
    """Follows a progress file in a thread and prints a line every ``every`` seconds (and
    at each new run): ``<prefix>run 3 of 7 (id): step 2,400/7,000, 24.0 steps/s, ...``."""

    def __init__(self, path: Path, prefix: str, every: float = 30.0, printer=print):
        self.path, self.prefix, self.every, self.printer = Path(path), prefix, every, printer
        self.status, self._stop = Status(), threading.Event()
        self._pos, self._last = 0, 0.0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def poll(self) -> None:
        try:
            with open(self.path) as f:
                f.seek(self._pos)
                chunk = f.read()
        except OSError:
            return
        complete = chunk[:chunk.rfind("\n") + 1]
        self._pos += len(complete.encode())
        for raw in complete.splitlines():
            try:
                urgent = self.status.feed(json.loads(raw))
            except (ValueError, KeyError):
                continue
            if urgent:
                self._say()
        if time.monotonic() - self._last >= self.every:
            self._say()

    def _say(self):
        text = self.status.line()
        if text:
            self.printer(self.prefix + text)
            self._last = time.monotonic()

    def _loop(self):
        while not self._stop.wait(2.0):
            self.poll()
