"""Sweeps: train every point of a grid through the run store and tabulate grokking.

``sweep(cfg, **{"data.phi": [3.6, 5.4], "seed": [0, 1, 2]})`` (or ``data__phi=[...]``)
trains each point (or takes it from the store: a re-run is free) and returns one tidy
DataFrame, one row per point: the grid values, ``run``, ``status`` ("ok", "skipped",
"failed"), ``reason``, and the grokking measures of ``grokbook.measures``.

A point whose config is impossible at this scale (e.g. phi above the graph's max_phi, a
``ConfigError``) is *skipped* with the reason; a point that raises anything else is
*failed* with its config and the error; the other points still finish.

Executors: any object with ``.map(fn, items) -> list`` whose elements are
``("ok", value)`` or ``("error", "message")``. ``fn`` is the module-level
``run_point`` (picklable) and every item is a plain dict holding the config dict and the
store path, so an executor may run points in other processes or on other machines.
"""
from __future__ import annotations

import itertools
import math
import traceback

import pandas as pd

from ..analysis.definitions import (GROKKED_AT, GROKKED_SPLIT, HALFWAY_AT, MEMORIZED_SPLIT,
                                    OOD_SPLIT, first_step, heldout_at)
from ..analysis import wang
from ..analysis.measures import grokking_measures
from ..core.config import Config, ConfigError, preset
from ..core.newknowledge import dataset_for
from ..core.plan import Plan, Planned, resolve
from ..core.progress import plan as announce
from ..core.store import load_run, run_id, store_path, train
from . import settings

__all__ = ["sweep", "LocalExecutor", "run_point", "default_grid", "expand_grid",
           "phi_points", "size_points", "grid_table", "sweep_curves", "by_value", "milestones", "wait_share", "describe_sweep", "compute_table", "sweep_curves_chart",
           "steps_vs_value_chart", "compute_chart"]


# ---------------------------------------------------------------- the worker
def run_point(item: dict) -> dict:
    """Train (or load) one point and return plain data. Never raises for a bad point."""
    out = {"run": None, "status": "ok", "reason": ""}
    try:
        cfg = Config.from_dict(item["config"])
        out["run"] = run_id(cfg)
        if not (store_path(item["store"]) / "runs" / out["run"] / "COMPLETE").exists():
            dataset_for(cfg)  # impossible points fail here, before any run directory exists
        run = train(cfg, store=item["store"], progress=item.get("progress", False))
        out.update(grokking_measures(run, **item.get("measures", {})))
        out["n_train"] = run.info.get("dataset", {}).get("train")
        out["max_phi"] = run.info.get("dataset", {}).get("max_phi")
        acc = run.accuracy()
        out["budget"] = cfg.train.max_steps
        out["half_step"] = first_step(acc, GROKKED_SPLIT, HALFWAY_AT)
        out["heldout_at_memorized"] = heldout_at(acc, out.get("memorized_step"))
        out["stopped_early"] = run.steps < cfg.train.max_steps
        for split in (MEMORIZED_SPLIT, GROKKED_SPLIT, OOD_SPLIT):
            if split in acc:  # an early-stopped run's last value is not a final one
                out[f"final_{split}"] = (math.nan if out["stopped_early"]
                                         else float(acc[split].iloc[-1]))
    except ConfigError as e:
        out.update(status="skipped", reason=str(e))
    except Exception as e:  # noqa: BLE001 - reported, not raised: the others finish
        out.update(status="failed", reason=f"{type(e).__name__}: {e}",
                   traceback=traceback.format_exc(limit=5))
    return out


class LocalExecutor:
    """Runs points here: sequentially, or in a multiprocessing pool when processes > 1."""

    def __init__(self, processes: int = 1, progress: bool = False):
        self.processes, self.progress = processes, progress

    @staticmethod
    def _safe(fn, item):
        try:
            return ("ok", fn(item))
        except Exception as e:  # noqa: BLE001
            return ("error", f"{type(e).__name__}: {e}")

    def map(self, fn, items) -> list:
        items = list(items)
        from tqdm.auto import tqdm
        bar = tqdm(total=len(items), desc="sweep", disable=not self.progress)
        out = []
        if self.processes > 1:
            import functools
            import multiprocessing as mp
            with mp.get_context("spawn").Pool(self.processes) as pool:
                for r in pool.imap(functools.partial(_safe_call, fn), items):
                    out.append(r)
                    bar.update(1)
        else:
            for item in items:
                out.append(self._safe(fn, item))
                bar.update(1)
        bar.close()
        return out


def _safe_call(fn, item):
    return LocalExecutor._safe(fn, item)


def _train_together(cfgs, store, progress: bool) -> None:
    """Train the buildable points through the plan scheduler (the worker pool); ``run_point``
    then reads each from the store, and reports whatever failed here."""
    resolve(Plan(Planned(f"point {i}", "03", "sweep", c)
                 for i, c in enumerate(cfgs) if _buildable(c)), store)


def _buildable(cfg: Config) -> bool:
    """Whether the config's graph can be built (a phi above its max_phi cannot)."""
    try:
        dataset_for(cfg)
    except ConfigError:
        return False
    return True


# ---------------------------------------------------------------- the grid
def _key(k: str) -> str:
    return k.replace("__", ".")


def expand_grid(**grids) -> list[dict]:
    """Cartesian product of the grid values, keys as dotted config fields."""
    keys = [_key(k) for k in grids]
    values = [list(v) if isinstance(v, (list, tuple, range)) else [v] for v in grids.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def sweep(base_config: Config, executor=None, progress: bool = True, store=None,
          measures: dict | None = None, config_of=None, **grids) -> pd.DataFrame:
    """Train every grid point (through the store) and return one row per point.

    ``measures`` are keyword arguments for ``grokking_measures`` (thresholds);
    ``config_of(point)`` makes a point's config (default: ``base_config`` with the point).
    """
    config_of = config_of or (lambda point: base_config.replace(**point))
    points = expand_grid(**grids)
    root = str(store_path(store))
    items, rows = [], []
    for point in points:
        try:
            cfg = config_of(point)
        except ConfigError as e:
            rows.append((point, {"status": "skipped", "reason": str(e), "run": None}))
            continue
        items.append((point, {"config": cfg.to_dict(), "store": root, "measures": measures or {},
                              "progress": bool(progress) and executor is None}))
    cfgs = [Config.from_dict(it["config"]) for _, it in items]
    with announce(cfgs, label="sweep"):
        if executor is None:  # here: points of one shape train together, as stacked groups
            _train_together(cfgs, store, progress)
        executor = executor or LocalExecutor(progress=progress)
        results = executor.map(run_point, [it for _, it in items]) if items else []
    for (point, item), res in zip(items, results):
        status, value = res
        if status == "ok":
            rows.append((point, value))
        else:
            rows.append((point, {"status": "failed", "reason": str(value), "run": None}))
    order = {id(p): i for i, p in enumerate(points)}
    rows.sort(key=lambda r: order[id(r[0])])
    table = pd.DataFrame([{**p, **r} for p, r in rows])
    lead = list(points[0]) if points else []
    rest = [c for c in ("run", "status", "reason") if c in table]
    return table[lead + rest + [c for c in table if c not in lead + rest]]


# ---------------------------------------------------------------- presets' grids
def chapter_base(preset_name: str):
    """The base config of chapter 3's sweep points: the subject, ending a run once it
    groks (``settings``' ``sweep_stop_at``; the subject's own points are its chapter-2
    runs, ``point_config``)."""
    stop = settings.of(preset_name)["sweep_stop_at"]
    return preset(preset_name, **({"train.stop_at": stop, "train.stop_after_grokked": 0.0}
                                  if stop else {}))


def point_config(preset_name: str, point: dict):
    """The config of one sweep point: where the point changes nothing but the seed, the
    subject's own run (chapter 2 trains it; the sweep only reads it); else the chapter's
    base with the point."""
    subject = preset(preset_name)
    same = subject.replace(**point)
    if same.replace(seed=subject.seed).hash() == subject.hash():
        return same
    return chapter_base(preset_name).replace(**point)


def default_grid(preset_name: str, phis=None, seeds=None, sizes=None) -> dict:
    """The chapter-3 grid of a preset: phis and seeds for the phi sweep, and graph sizes
    (``data.n_entities``) at ``size_phi`` (where the grid names none: the preset's phi).
    Arguments override."""
    from .paths import claim_seeds
    g = dict(settings.of(preset_name)["sweep_grid"])
    g.setdefault("size_phi", preset(preset_name).data.phi)
    if g.get("seeds") is None:          # the verdicts' seeds (subject.claim_seeds)
        g["seeds"] = claim_seeds(preset_name)
    for k, v in (("phis", phis), ("seeds", seeds), ("sizes", sizes)):
        if v is not None:
            g[k] = list(v)
    return g


def plan(preset_name: str) -> Plan:
    """Chapter 3's runs: every buildable point of the phi and graph-size sweeps of the
    preset's grid (a point both sweeps share is one run)."""
    grid = default_grid(preset_name)
    p = Plan()
    for kind, points in (("phi", phi_points(grid)), ("size", size_points(grid))):
        for point in expand_grid(**points):
            cfg = point_config(preset_name, point)
            if _buildable(cfg):
                p.add(Planned(f"03/{kind}/" + ", ".join(f"{k.split('.')[-1]} {v:g}"
                                                       for k, v in point.items()),
                              "03", "sweep point", cfg, labels=point))
    return p


def chapter_sweep(preset_name: str, kind: str, grid: dict | None = None, store=None,
                  progress: bool = False) -> pd.DataFrame:
    """Chapter 3's ``kind`` sweep ("phi" or "size") of ``grid`` (default: the preset's),
    each point ``point_config``'s: from the store (the book trained them), or trained."""
    grid = grid or default_grid(preset_name)
    points = phi_points(grid) if kind == "phi" else size_points(grid)
    return sweep(chapter_base(preset_name), store=store, progress=progress,
                 config_of=lambda point: point_config(preset_name, point), **points)


def phi_points(grid: dict) -> dict:
    """The phi sweep's grid for ``sweep``."""
    return {"data.phi": grid["phis"], "seed": grid["seeds"]}


def size_points(grid: dict) -> dict:
    """The graph-size sweep's grid, at the grid's ``size_phi``."""
    return {"data.n_entities": grid["sizes"], "seed": grid["seeds"],
            "data.phi": [grid["size_phi"]]}


def grid_table(grid: dict, base) -> pd.DataFrame:
    """The grid a page trains, with the model and budget of ``base`` (chapter 3 shows it)."""
    model = (f"{base.model.arch}, width {base.model.d_model}, "
             f"at most {base.train.max_steps:,} steps")
    rows = {**grid, "model": model}
    return pd.DataFrame({"setting": list(rows), "value": [
        ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
        for v in rows.values()]})


# ---------------------------------------------------------------- tables for charts
def sweep_curves(table: pd.DataFrame, by=("data.phi", "seed"), store=None,
                 splits=("train_inferred", "test_inferred_iid", "test_inferred_ood")):
    """Long accuracy table of every ok run of a sweep: step, split, accuracy + ``by``."""
    parts = []
    for _, row in table[table["status"] == "ok"].iterrows():
        m = load_run(row["run"], store).metrics
        m = m[m["split"].isin(splits)][["step", "split", "accuracy"]]
        parts.append(m.assign(**{k: row[k] for k in by if k in row}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def by_value(table: pd.DataFrame, key: str = "data.phi",
             cols=("memorized_step", "half_step", "grokked_step")) -> pd.DataFrame:
    """Per value of ``key``: runs, how many grokked, how many had a clean wait (held-out
    ID <= ``wang.BEFORE_AT`` when memorized), and mean / min / max of ``cols`` over the
    seeds, a run that did not reach a milestone counting as its budget (a lower bound:
    ``censored`` says how many did not)."""
    ok = table[table["status"] == "ok"]
    rows = []
    for v, g in ok.groupby(key):
        held = pd.to_numeric(g.get("heldout_at_memorized"), errors="coerce")
        r = {key: v, "runs": len(g), "grokked": int(g["grokked_step"].notna().sum()),
             "clean_wait": int((held <= wang.BEFORE_AT).sum())}
        for c in cols:
            x = pd.to_numeric(g[c], errors="coerce")
            done = x.notna()
            x = x.where(done, pd.to_numeric(g["budget"], errors="coerce"))
            r.update({f"{c}_mean": x.mean(), f"{c}_min": x.min(), f"{c}_max": x.max(),
                      f"{c}_censored": int((~done).sum())})
        rows.append(r)
    return pd.DataFrame(rows)


def milestones(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per run: memorized step, held-out ID accuracy there, steps to held-out 0.5
    and 0.9 ("> budget" when not reached), for reading."""
    ok = table[table["status"] == "ok"].copy()

    def show(col):
        return [f"> {b:,}" if pd.isna(x) else f"{int(x):,}" for x, b in zip(ok[col], ok["budget"])]

    return pd.DataFrame({key: ok[key], "seed": ok["seed"], "memorized": show("memorized_step"),
                         "held-out at memorized": ok["heldout_at_memorized"],
                         "held-out 0.5": show("half_step"), "held-out 0.9": show("grokked_step"),
                         "run": ok["run"]}).reset_index(drop=True)


def wait_share(table: pd.DataFrame) -> str:
    """What share of the compute to generalize came after the training facts were fitted,
    over the runs that did both (computed, not assumed)."""
    ok = table[(table["status"] == "ok") & table["grokked_step"].notna()
               & table["memorized_step"].notna()]
    if not len(ok):
        return "No run both memorized and grokked here, so the share of the wait is not measured."
    share = 1 - ok["memorize_flops"].astype(float) / ok["grok_flops"].astype(float)
    return (f"Over the {len(ok)} runs that memorized and grokked, {share.mean():.0%} of the "
            f"compute to reach held-out ID {GROKKED_AT} (range {share.min():.0%}-{share.max():.0%}) "
            f"was spent after the training facts were fitted.")


def compute_table(table: pd.DataFrame, key: str = "data.phi") -> pd.DataFrame:
    """Compute to memorize and to generalize, long form: key, seed, phase, steps, examples,
    flops, seconds (rows only where the phase was reached)."""
    ok = table[table["status"] == "ok"]
    rows = []
    for _, r in ok.iterrows():
        for phase, prefix in (("memorize", "memorize"), ("generalize", "grok")):
            if r.get(f"{prefix}_steps") is None or pd.isna(r.get(f"{prefix}_steps")):
                continue
            rows.append({key: r[key], "seed": r.get("seed"), "phase": phase,
                         "steps": int(r[f"{prefix}_steps"]),
                         "examples": int(r[f"{prefix}_examples"]),
                         "flops": float(r[f"{prefix}_flops"]),
                         "seconds": r.get(f"{prefix}_seconds")})
    return pd.DataFrame(rows, columns=[key, "seed", "phase", "steps", "examples", "flops",
                                       "seconds"])


# ---------------------------------------------------------------- charts
def sweep_curves_chart(curves: pd.DataFrame, key: str = "data.phi"):
    """Accuracy curves of every run, one φ at a time: a dropdown in the static page picks
    φ (all seeds of it are drawn; colour = probe set, dash = seed)."""
    import altair as alt
    d = curves.rename(columns={key: "phi"})
    values = sorted(d["phi"].unique().tolist())
    pick = alt.param(name="phi", value=values[len(values) // 2] if values else None,
                     bind=alt.binding_select(options=values, name="φ "))
    return alt.Chart(d).mark_line().encode(
        x=alt.X("step:Q"), y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("split:N", title="probe set"),
        strokeDash=alt.StrokeDash("seed:N"),
        detail="seed:N",
        tooltip=["phi:Q", "seed:N", "split:N", "step:Q", alt.Tooltip("accuracy:Q", format=".3f")],
    ).add_params(pick).transform_filter(alt.datum.phi == pick).properties(
        width=420, height=240, title="accuracy during training at the chosen φ")


def steps_vs_value_chart(table: pd.DataFrame, key: str = "data.phi", title: str | None = None):
    """Memorized and grokked step per run (points) and the mean over seeds (line)."""
    import altair as alt
    ok = table[table["status"] == "ok"]
    if "seed" not in ok:
        ok = ok.assign(seed=0)
    d = ok.melt(id_vars=[key, "seed"], value_vars=["memorized_step", "grokked_step"],
                var_name="measure", value_name="step").dropna(subset=["step"])
    d = d.rename(columns={key: "x"})
    base = alt.Chart(d).encode(x=alt.X("x:Q", title=key), color="measure:N")
    pts = base.mark_point(filled=True, opacity=0.6).encode(
        y=alt.Y("step:Q", title="step"), tooltip=["x:Q", "seed:N", "measure:N", "step:Q"])
    line = base.mark_line().encode(y="mean(step):Q")
    band = base.mark_errorbar().encode(y="step:Q")
    return (band + pts + line).properties(width=360, height=220,
                                          title=title or f"when it memorized / grokked vs {key}")


def compute_chart(compute: pd.DataFrame, key: str = "data.phi", measure: str = "flops"):
    """Compute to memorize and to generalize per run (log scale)."""
    import altair as alt
    d = compute.rename(columns={key: "x"})
    return alt.Chart(d).mark_point(filled=True).encode(
        x=alt.X("x:Q", title=key), y=alt.Y(f"{measure}:Q", scale=alt.Scale(type="log")),
        color="phase:N", shape="phase:N",
        tooltip=["x:Q", "seed:N", "phase:N", "steps:Q", "examples:Q",
                 alt.Tooltip("flops:Q", format=".3g")],
    ).properties(width=360, height=220, title=f"{measure} to memorize and to generalize")


# ---------------------------------------------------------------- computed prose
def describe_sweep(table: pd.DataFrame, key: str = "data.phi") -> str:
    """One paragraph, computed from a sweep, true whatever the numbers are: how many runs
    finished and grokked, what was skipped, and the verdict of Wang's rule for ``key``."""
    ok = table[table["status"] == "ok"]
    skipped = table[table["status"] == "skipped"]
    grok = ok[ok["grokked_step"].notna()]
    text = [f"{len(ok)} runs finished; {len(grok)} of them reached held-out ID {GROKKED_AT} "
            f"within their budget."]
    if len(skipped):
        name = key.split(".")[-1]
        text.append(f"{len(skipped)} point(s) were skipped as impossible at this scale "
                    f"({name} = {', '.join(str(v) for v in skipped[key])}).")
    at_mem = ok["heldout_at_memorized"].dropna() if "heldout_at_memorized" in ok else []
    if len(at_mem):
        above = int((at_mem > wang.BEFORE_AT).sum())
        text.append(f"Held-out ID accuracy when the training facts were memorized: "
                    f"{at_mem.min():.2f}-{at_mem.max():.2f}; in {above} of {len(at_mem)} runs "
                    f"above {wang.BEFORE_AT}, where Wang's grokking rule sees no clean delay "
                    f"(these runs measure how fast held-out accuracy rises, not the wait).")
    rule = wang.phi_verdict if key == "data.phi" else wang.size_verdict
    verdict, why, _ = rule(ok.assign(seed=ok.get("seed", 0)), key) if len(ok) else (
        wang.NOT_MEASURED, "no run finished", {})
    text.append(f"Wang et al.'s rule ({'speed follows φ' if key == 'data.phi' else 'not the graph size'}): "
                f"**{verdict}** ({why}).")
    return " ".join(text)
