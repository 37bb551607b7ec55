"""The book's plan: every run each chapter reads, declared once, by chapter.

Each chapter module declares its own runs (``recipe.plan``, ``sweeps.plan``, ...); this
module puts them together. ``grokbook book`` trains ``book_plan`` before any chapter
executes, so executing a chapter only reads the store; ``grokbook plan`` lists it with
each run's predicted cost; chapter 7 reads every chapter's runs through it.
"""
from __future__ import annotations

import pandas as pd

from ..core.plan import Plan
from . import detect, paths, recipe, shortcuts, sweeps, transfer

CHAPTERS = {"02": recipe.plan, "03": sweeps.plan, "04": paths.plan, "05": detect.plan,
            "06": transfer.plan, "07": shortcuts.plan}


def book_plan(preset_name: str = "cpu", chapters=None) -> Plan:
    """The plans of ``chapters`` (numbers like "02"; default: all) in one plan."""
    p = Plan()
    for ch, make in CHAPTERS.items():
        if chapters is None or ch in chapters:
            p.extend(make(preset_name))
    return p


def plan_table(preset_name: str = "cpu", chapters=None, store=None,
               measure: bool = True) -> pd.DataFrame:
    """Every entry of the book's plan: chapter, name, role, run id (where its config is
    known: in advance, or built from parents already in the store), after, when (the
    entry's condition in words), its state in the store (stored, to train, waiting on a
    parent, skipped), predicted FLOPs and seconds on this machine (``core.plan.predict``:
    the measured rate of its shape; a fine-tune not yet built is predicted from a config of
    its shape and length)."""
    from ..core.plan import MISSING, STORED, predict, resolve
    from ..core.progress import work_of
    p = book_plan(preset_name, chapters)
    out = resolve(p, store, train=False)
    state = {STORED: "stored", MISSING: "to train"}
    rows = []
    for e in p:
        o = out[e.name]
        cfg = o.config or e.config or e.like
        todo = o.status in (MISSING, "waiting")
        rows.append({"chapter": e.chapter, "name": e.name, "role": e.role,
                     "run": o.run_id or "", "after": ", ".join(e.after),
                     "when": e.note if (e.when or e.build) else "",
                     "state": state.get(o.status, o.status),
                     "reason": o.reason if o.status not in (STORED, MISSING) else "",
                     "flops": work_of(cfg) if cfg is not None else None,
                     "seconds": (predict(cfg, store, measure) if cfg is not None and todo
                                 else None)})
    return pd.DataFrame(rows, columns=["chapter", "name", "role", "run", "after", "when",
                                       "state", "reason", "flops", "seconds"])


def plan_summary(table) -> dict:
    """Counts and predicted time of ``plan_table`` (each run once: chapters share runs)."""
    runs = table[table["run"] != ""].drop_duplicates("run")
    todo = runs[runs["state"] == "to train"]
    waiting = table[table["state"] == "waiting"]
    return {"entries": len(table), "runs": int(len(runs)),
            "stored": int((runs["state"] == "stored").sum()), "to_train": int(len(todo)),
            "waiting": int(len(waiting)),
            "skipped": int((table["state"] == "skipped").sum()),
            "seconds_to_train": float(todo["seconds"].fillna(0).sum()),
            "unpredicted": int(todo["seconds"].isna().sum()),
            "seconds_waiting_at_most": float(waiting["seconds"].fillna(0).sum())}
