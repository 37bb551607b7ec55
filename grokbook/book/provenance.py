"""The appendix *Cost and provenance*: what the book's runs and its build cost, from the run
store and the build's own timing record (``pipeline.BuildRecord``), never typed by hand.

- ``run_table(preset)``: every run of the book's plan that is in the store, once, with the
  chapter that first declares it: steps, wall seconds, steps/s, FLOPs, the machine and
  versions that trained it, when it finished;
- ``build_record()``: the timing record of the build executing this page (None outside a
  build: a chapter run alone in Jupyter or Colab);
- ``chapter_table`` / ``describe_cost`` / ``cost_chart``: the record and the runs in a table,
  in words and as a chart.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .pipeline import RECORD_ENV


def run_table(preset_name: str, store=None) -> pd.DataFrame:
    """One row per run of the book's plan in the store (a run two chapters share: once)."""
    from ..chapters.plans import book_plan
    from ..core.plan import resolve
    out = resolve(book_plan(preset_name), store, train=False)
    plan = book_plan(preset_name)
    rows, seen = [], set()
    for name, o in out.items():
        if o.run is None or o.run.id in seen:
            continue
        seen.add(o.run.id)
        info, e = o.run.info, plan[name]
        rows.append({"chapter": e.chapter, "name": name, "role": e.role, "run": o.run.id,
                     "steps": o.run.steps, "wall_seconds": round(info["wall_seconds"], 1),
                     "steps_per_second": round(info["steps_per_second"], 1),
                     "flops": info.get("flops_per_step", 0) * o.run.steps,
                     "device": info.get("device", ""), "torch": info.get("torch", ""),
                     "finished_at": info.get("finished_at", "")})
    return pd.DataFrame(rows, columns=["chapter", "name", "role", "run", "steps",
                                       "wall_seconds", "steps_per_second", "flops", "device",
                                       "torch", "finished_at"])


def build_record(path=None) -> dict | None:
    """The build's timing record (``$GROKBOOK_BUILD_RECORD``), or None."""
    p = Path(path or os.environ.get(RECORD_ENV, ""))
    if not str(p) or not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return None


def chapter_table(record: dict | None) -> pd.DataFrame:
    """The build's steps: training the plan, each chapter (0 s: reused), the HTML."""
    if not record:
        return pd.DataFrame(columns=["step", "seconds", "note"])
    plan = record.get("plan") or {}
    rows = [{"step": "train the plan", "seconds": round(plan.get("seconds", 0), 1),
             "note": f"{plan.get('trained', 0)} run(s) trained of {plan.get('runs', 0)}; "
                     f"predicted {plan.get('predicted_seconds', 0) or 0:.0f} s"}]
    rows += [{"step": entry, "seconds": c["seconds"],
              "note": "reused (unchanged)" if c["reused"] else "executed"}
             for entry, c in record.get("chapters", {}).items()]
    return pd.DataFrame(rows)


def per_chapter(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs, wall seconds and FLOPs per chapter that declares them."""
    if not len(runs):
        return pd.DataFrame(columns=["chapter", "runs", "wall_seconds", "flops"])
    return runs.groupby("chapter").agg(runs=("run", "count"), wall_seconds=("wall_seconds", "sum"),
                                       flops=("flops", "sum")).reset_index()


def describe_cost(runs: pd.DataFrame, record: dict | None) -> str:
    """The cost in words, computed from the runs and the record."""
    if not len(runs):
        return "No run of the book's plan is in the store yet."
    text = (f"The book's plan holds {len(runs)} runs in the store: {runs['wall_seconds'].sum() / 60:.1f} "
            f"minutes of training on one thread each ({runs['flops'].sum():.3g} FLOPs), on "
            f"{', '.join(sorted(set(runs['device'])))}.")
    if record and record.get("plan"):
        p = record["plan"]
        text += (f" This build trained {p.get('trained', 0)} of them in {p['seconds'] / 60:.1f} "
                 f"minutes on {p.get('workers', 1)} worker(s)")
        if p.get("predicted_seconds"):
            text += f" (predicted {p['predicted_seconds'] / 60:.1f} minutes)"
        text += "."
    elif record is not None:
        text += " This build trained nothing: every run was in the store."
    return text


def cost_chart(runs: pd.DataFrame):
    """Wall seconds of the runs, per chapter that declares them, stacked by role."""
    import altair as alt
    return alt.Chart(runs).mark_bar().encode(
        x=alt.X("chapter:N"), y=alt.Y("sum(wall_seconds):Q", title="training wall seconds"),
        color=alt.Color("role:N"),
        tooltip=["chapter:N", "role:N", alt.Tooltip("sum(wall_seconds):Q", format=".0f"),
                 alt.Tooltip("count():Q", title="runs")]).properties(
        width=360, height=220, title="what the book's runs cost, by chapter")
