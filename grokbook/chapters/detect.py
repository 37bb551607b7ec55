"""Fake grokking: does accuracy on unseen queries come with the inference path, or without?

He et al. (2026) train under five data regimes (``grokbook.regimes``) and follow two
curves per run: accuracy on the OOD test queries, and the rate at which the bridge entity
b is "found" inside the model by the logit lens. When accuracy rises while the bridge is
never resolved, they call it *fake grokking*; when the bridge is resolved but accuracy
stays low, the path exists without the accuracy. This module measures both curves over a
run's checkpoints and classifies the run:

- ``bridge_over_training(run)``: per checkpoint, the bridge-found rate on a probe set
  under the strict rule (b top-1 at the r1 position at one stage fixed in advance, the
  middle one, with a positive check: ``analysis.lens.strict_check``) and the lenient
  one of the study (b top-1 at any stage and any position), plus a *control*: the lenient
  rule applied to a wrong bridge (another query's b), i.e. how often the lenient rule
  "finds" an entity that plays no role in the query.
- ``query_curves``: the same curves per query, so that ``crossing_table`` gives the step
  each curve first reaches 0.5 and 0.9 as a multiple of the run's fitted step (training
  accuracy 0.9: the study's reference), with a bootstrap interval over queries.
- ``classify`` / ``detect``: one of four classes (``CLASSES``) from which curves arrive
  within the run, or *not measured* (still rising, capped short of its clock, never
  fitted, a rule that cannot tell); ``study_at_clock`` applies the same rule to the study's own crossings.
- the study's TRM numbers are ``chapters.study.REGIME_NUMBERS``.
- ``chapter_configs(preset)``: the chapter's runs (the study's four figure regimes x the
  architectures the preset affords), each sized by its own clock (``CLOCK``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ..analysis.circuit import middle_stage
from ..analysis.definitions import (BRIDGE_READABLE, GROKKED_AT, HALFWAY_AT,  # noqa: F401
                                    R1_POSITION, RISING_BY, RISING_OVER, still_rising, wilson)
from ..analysis.lens import bridge_checks, bridge_found, logit_lens, site_lens
from ..core.config import ARCH_NAMES, SUBJECT, preset
from ..core.plan import Plan, Planned, plan_runs
from ..core.regimes import REGIMES
from . import settings
from .study import REGIME_NUMBERS

CIRCUIT_WITH_ACCURACY = "circuit with accuracy"
FAKE = "accuracy without circuit"          # the study's "fake grokking"
CIRCUIT_ONLY = "circuit without accuracy"
NEITHER = "neither"
STILL_RISING = "not measured (still rising)"
STRICT_BLIND = "not measured (strict rule blind)"   # failed analysis.lens.strict_check
LENIENT_BLIND = "not measured (lenient rule blind)"  # failed lenient_check
NOT_FITTED = "not measured (never fitted)"   # train_inferred never reached FITTED_AT: no clock
TOO_SHORT = "not measured (short of its clock)"  # capped before CLOCK x fitted, a curve missing
CLASSES = (CIRCUIT_WITH_ACCURACY, FAKE, CIRCUIT_ONLY, NEITHER, STILL_RISING, TOO_SHORT,
           STRICT_BLIND, LENIENT_BLIND, NOT_FITTED)
# one colour per class: the four measured ones, then greys for every kind of "not measured"
CLASS_COLORS = ["#2ca02c", "#d62728", "#1f77b4", "#dddddd", "#fdd49e", "#fee8c8", "#bdbdbd",
                "#969696", "#737373"]
# the per-query curves over training (``query_curves``) and their names in the charts
CURVES = {"exact": "OOD accuracy", "target_lenient": "OOD target, lenient (the study's 'accuracy')",
          "strict": "bridge strict", "lenient": "bridge lenient",
          "lenient_control": "bridge lenient, wrong b"}
BRIDGE_RULES = ("strict", "lenient")
ARCHS = ARCH_NAMES  # the subject (trm), Wang's looped transformer, the dense transformer
# The detector's thresholds on OOD accuracy and bridge rates: a curve "has arrived" when it
# first reaches 0.5. Why not 0.9: at a run's 10x clock even the study's own curves cross
# 0.9 in one order only for both-full (its hop-2-only OOD passes 0.9 at ~15x, its bridge
# never); at 0.5 they fall into three classes within 10x (``study_at_clock``).
ACC_AT = BRIDGE_AT = HALFWAY_AT
BOOTSTRAP = 1000        # resamples of the queries for crossing-step intervals
QUERIES = 500           # OOD test queries read per checkpoint (cpu: all 390 of them)


# ---------------------------------------------------------------- the chapter's runs
# The study's OOD curves rise at a multiple of the step each run's training accuracy passed
# 0.9 (its TRM: ~1x for both full, ~6.6x hop-2 only, ~8x natural, ~17x hop-1 only), so each
# run here is sized by its own clock: it ends at the first evaluation at or past CLOCK x its
# fitted step (train_inferred >= 0.9, the study's reference; ``train.stop_after_fitted``),
# or at its cap (max_steps). The graph holds 20 % OOD
# facts (the preset: 10 %), so exact match is read on 390 OOD test queries (a 95 % interval
# of +-0.05) instead of 101. The four regimes of the study's figure; both-half is in its
# transfer table only.
CLOCK, FIGURE_REGIMES = settings.CLOCK, settings.FIGURE_REGIMES   # (the schedule per preset: settings)


def chapter_configs(preset_name: str = "cpu", regimes=None, archs=ARCHS) -> dict:
    """{(regime, arch, seed): Config} for the fake-grokking chapter: the study's figure
    regimes (``FIGURE_REGIMES``, or ``regimes``) x each architecture of
    ``core.config.ARCHITECTURES`` that the preset trains (``settings``' ``regime_runs``),
    the subject on every claim seed (its natural regime is its chapter-2 run where the
    preset gives the chapter no schedule of its own), the others on the first. A run ends
    at twice its grokked step like the subject's, or at its budget (``regime_schedule``
    may change that). The study's runs took 1.5M steps."""
    from .paths import claim_seeds
    out = {}
    chosen = settings.of(preset_name)
    plan_ = chosen["regime_runs"] or {a: FIGURE_REGIMES for a in ARCHS}
    sched = chosen["regime_schedule"]
    seeds = claim_seeds(preset_name)
    for regime in regimes or FIGURE_REGIMES:
        for arch in archs:
            if regime in plan_.get(arch, ()) or regimes is not None and arch in plan_:
                for seed in (seeds if arch == SUBJECT else seeds[:1]):
                    out[(regime, arch, seed)] = preset(preset_name, arch=arch, **{
                        "seed": seed, "data.regime": regime, **sched.get("all", {}),
                        **sched.get(arch, {})})
    return out


def _name(regime, arch, seed) -> str:
    return f"05/{regime}/{arch}/seed {seed}"


def plan(preset_name: str = "cpu") -> Plan:
    """Chapter 5's runs: ``chapter_configs``, one entry per (regime, architecture, seed)."""
    return Plan(Planned(_name(*key), "05", "regime", cfg,
                        labels={"regime": key[0], "arch": key[1], "seed": key[2]})
                for key, cfg in chapter_configs(preset_name).items())


def train_chapter(preset_name: str = "cpu", regimes=None, archs=ARCHS, store=None,
                  progress: bool = False) -> dict:
    """{(regime, arch, seed): Run} of ``chapter_configs`` from the store (trained if
    missing)."""
    configs = chapter_configs(preset_name, regimes, archs)
    p = Plan(Planned(_name(*key), "05", "regime", c) for key, c in configs.items())
    runs = plan_runs(p, store=store)
    return {key: runs[_name(*key)] for key in configs}


# ---------------------------------------------------------------- bridge over training
def _two_hop_probe(ds, probe: str, max_queries: int | None):
    q = ds.probes[probe]
    keep = np.flatnonzero(q["r2"] >= 0)[:max_queries]
    return {k: v[keep] for k, v in q.items()}


def _strict_stage(model) -> str:
    """The strict rule's stage, fixed in advance: the middle of the model's stages."""
    return middle_stage(model.stage_names)


def _lens_hits(model, ds, q: dict, stage: str, targets=("b", "t")) -> dict:
    """Per query, at one checkpoint: exact match, and whether each target is top-1 at the
    strict site (b at the r1 position at ``stage``) or anywhere (any stage, any position)."""
    stages, correct, lens = site_lens(model, ds, q, targets=targets)
    out = {"exact": correct}
    if "b" in targets:
        rank = lens["b"][0]                                    # (stages, queries, positions)
        out["strict"] = rank[stages.index(stage), :, R1_POSITION] == 1
        out["lenient"] = (rank == 1).any(axis=(0, 2))
    if "t" in targets:
        out["target_lenient"] = (lens["t"][0] == 1).any(axis=(0, 2))
    return out


@torch.no_grad()
def query_curves(run, probe: str = "test_inferred_ood", stage: str | None = None, steps=None,
                 max_queries: int | None = 500, seed: int = 0, control: bool = True,
                 target: bool = True) -> dict:
    """Per checkpoint and query, whether each curve's event holds: ``hits[curve]`` is a
    (checkpoints, queries) boolean array for ``exact`` (the answer is t), ``target_lenient``
    (t top-1 at any stage and position: the study's OOD curve), ``strict`` (b top-1 at the
    r1 position at one stage fixed in advance, by default the middle one), ``lenient`` (b
    top-1 anywhere) and ``lenient_control`` (the lenient rule asked about another query's b,
    drawn with ``seed``: what it finds by chance; only with ``control``; ``target_lenient``
    only with ``target``). Also ``steps``, ``stage`` and the two rules' positive checks on
    the trained two-hop facts at the last checkpoint (``analysis.lens.bridge_checks``)."""
    ds = run.dataset
    q = _two_hop_probe(ds, probe, max_queries)
    steps = list(run.checkpoints if steps is None else steps)
    last = run.load_model(run.checkpoints[-1])
    stage = stage or _strict_stage(last)
    trained = _two_hop_probe(ds, "train_inferred", max_queries)
    wrong = dict(q, b=np.random.default_rng(seed).permutation(q["b"]))
    hits = {}
    for step in steps:
        model = run.load_model(step)
        for k, v in _lens_hits(model, ds, q, stage, ("b", "t") if target else ("b",)).items():
            hits.setdefault(k, []).append(v)
        if control:
            hits.setdefault("lenient_control", []).append(
                _lens_hits(model, ds, wrong, stage, ("b",))["lenient"])
    checks = bridge_checks(last, ds, trained, stage)
    return {"steps": steps, "stage": stage, "n": len(q["h"]),
            "hits": {k: np.array(hits[k], dtype=bool).reshape(len(steps), -1)
                     for k in CURVES if k in hits},
            "strict_check": checks["strict"], "lenient_check": checks["lenient"]}


def bridge_over_training(run, probe: str = "test_inferred_ood", rule: str = "both",
                         stage: str | None = None, steps=None, max_queries: int | None = 500,
                         control: bool = True, seed: int = 0) -> pd.DataFrame:
    """Tidy table: step, rule, rate, n, stage (the strict rule's stage), per checkpoint,
    from ``query_curves``. ``rule``: ``strict``, ``lenient``,
    or ``both`` (which adds ``target_lenient``, the study's OOD curve on the same queries);
    ``control`` adds ``lenient_control``. ``attrs``: the rules' positive checks and the
    per-query ``curves`` (for ``crossing_table``)."""
    if rule not in ("strict", "lenient", "both"):
        raise ValueError(f"rule: {rule!r} is not allowed; allowed: strict, lenient, both")
    c = query_curves(run, probe, stage, steps, max_queries, seed, control, rule == "both")
    keep = [r for r in BRIDGE_RULES if rule in (r, "both")]
    keep += ["target_lenient"] * (rule == "both") + ["lenient_control"] * control
    rows = [dict(step=step, rule=name, rate=float(c["hits"][name][i].mean()) if c["n"]
                 else math.nan, n=c["n"], stage=c["stage"])
            for i, step in enumerate(c["steps"]) for name in keep]
    out = pd.DataFrame(rows, columns=["step", "rule", "rate", "n", "stage"])
    out.attrs.update(strict_check=c["strict_check"], lenient_check=c["lenient_check"], curves=c)
    return out


# ---------------------------------------------------------------- crossings and verdicts
def first_crossing(series: pd.Series, threshold: float):
    """First index (step) where ``series`` reaches ``threshold``; None if never."""
    s = series.dropna()
    hit = s.index[s >= threshold]
    return int(hit[0]) if len(hit) else None


def _end(series: pd.Series) -> float:
    s = series.dropna().sort_index()
    return float(s.iloc[-1]) if len(s) else math.nan


def classify(accuracy: pd.Series, bridge: pd.Series, acc_threshold: float = ACC_AT,
             bridge_threshold: float = BRIDGE_AT, complete: bool = True) -> str:
    """One of ``CLASSES`` from an accuracy curve and a bridge-found curve (index: step), on
    crossing times: a run *has accuracy* if its accuracy reaches ``acc_threshold`` at some
    step of the run, and *has the circuit* if its bridge rate reaches ``bridge_threshold``.
    A curve that never reached its threshold but was still rising when the run ended
    (``still_rising``) leaves the run *not measured*: it was cut off, not settled; so does
    any curve that did not arrive in a run that ended short of its clock (``complete``
    False: capped before ``CLOCK`` x its fitted step), flat or not."""
    acc = first_crossing(accuracy, acc_threshold) is not None
    circuit = first_crossing(bridge, bridge_threshold) is not None
    if not complete and not (acc and circuit):
        return TOO_SHORT
    if (not acc and still_rising(accuracy, acc_threshold)) or \
            (not circuit and still_rising(bridge, bridge_threshold)):
        return STILL_RISING
    return {(True, True): CIRCUIT_WITH_ACCURACY, (True, False): FAKE,
            (False, True): CIRCUIT_ONLY, (False, False): NEITHER}[(acc, circuit)]


def crossing_steps(accuracy: pd.Series, bridge: pd.Series, thresholds=(HALFWAY_AT, GROKKED_AT)) -> dict:
    """Steps where accuracy and bridge rate first reach each threshold (None = never)."""
    out = {}
    for th in thresholds:
        out[f"acc_{th:g}"] = first_crossing(accuracy, th)
        out[f"bridge_{th:g}"] = first_crossing(bridge, th)
    return out


def detect(accuracy: pd.DataFrame, bridge: pd.DataFrame, acc_probe: str = "test_inferred_ood",
           acc_threshold: float = ACC_AT, bridge_threshold: float = BRIDGE_AT,
           thresholds=(HALFWAY_AT, GROKKED_AT), strict_readable: bool = True,
           lenient_readable: bool = True, fitted: bool = True,
           complete: bool = True) -> pd.DataFrame:
    """The detector: one row per bridge rule with crossings, end values and the verdict.

    ``accuracy`` is ``run.accuracy()`` (index step, one column per probe) or a table with
    the same column; ``bridge`` is ``bridge_over_training``'s table (step, rule, rate).
    Accuracy is read at the bridge's steps when it has them, so both curves are read at
    the same steps. A rule that failed its positive check (``strict_readable`` /
    ``lenient_readable`` False) gets ``STRICT_BLIND`` / ``LENIENT_BLIND``: its low rate
    says nothing; a run that never fitted its training facts gets ``NOT_FITTED``; one cut
    short of its clock (``complete`` False) is judged by ``classify``'s rule for it.
    """
    acc = accuracy[acc_probe]
    rows = []
    blind = {"strict": (strict_readable, STRICT_BLIND), "lenient": (lenient_readable, LENIENT_BLIND)}
    for rule in [r for r in BRIDGE_RULES if r in set(bridge["rule"])]:
        b = bridge[bridge["rule"] == rule].set_index("step")["rate"].sort_index()
        a = acc.reindex(b.index) if set(b.index) <= set(acc.index) else acc
        t = bridge[bridge["rule"] == "target_lenient"].set_index("step")["rate"]
        readable, blind_class = blind[rule]
        verdict = (NOT_FITTED if not fitted else blind_class if not readable
                   else classify(a, b, acc_threshold, bridge_threshold, complete))
        rows.append(dict(rule=rule, **crossing_steps(a, b, thresholds),
                         acc_end=round(_end(a), 4), bridge_end=round(_end(b), 4),
                         target_lenient_end=round(_end(t), 4) if len(t) else math.nan,
                         acc_peak=round(float(a.max()), 4), verdict=verdict))
    return pd.DataFrame(rows)


def crossing_with_interval(hits: np.ndarray, steps, threshold: float, n_boot: int = BOOTSTRAP,
                           seed: int = 0) -> tuple:
    """(first step, lo, hi): the first of ``steps`` where the share of queries with a hit
    (``hits``: checkpoints x queries) reaches ``threshold`` (None = not within the run),
    and a 95 % bootstrap interval over the queries (``inf`` = not within the run). The
    interval covers the sampling of queries only; the checkpoint grid adds its own
    uncertainty (``crossing_table``'s ``_before`` column)."""
    steps = np.asarray(steps, dtype=float)
    if hits.shape[1] == 0:
        return None, math.nan, math.nan
    rate = hits.mean(1)
    first = int(steps[np.argmax(rate >= threshold)]) if (rate >= threshold).any() else None
    idx = np.random.default_rng(seed).integers(0, hits.shape[1], (n_boot, hits.shape[1]))
    reach = hits[:, idx].mean(-1) >= threshold                    # (checkpoints, n_boot)
    firsts = np.where(reach.any(0), steps[reach.argmax(0)], np.inf)
    lo = np.percentile(firsts, 2.5, method="lower")      # no interpolation: inf stays inf
    hi = np.percentile(firsts, 97.5, method="higher")
    return first, float(lo), float(hi)


def _times(x, mem) -> float:
    """A step as a multiple of the fitted step (inf: not within the run; NaN: the run never
    fitted, so it has no clock)."""
    if not mem:
        return math.nan
    return math.inf if x is None or not math.isfinite(x) else round(x / mem, 2)


def crossing_table(curves: dict, fitted: int | None, thresholds=(HALFWAY_AT, GROKKED_AT),
                   seed: int = 0, rising_at: float = HALFWAY_AT) -> pd.DataFrame:
    """One row per curve of ``query_curves``: the step it first reaches each threshold, as
    a multiple of the run's fitted step with a 95 % bootstrap interval over queries
    (``inf``: not within the run) and the checkpoint before it (``_before``: the curve was
    still below there, so the crossing lies in between), its end value with a Wilson
    interval, and whether it had not reached ``rising_at`` but was still rising at the end
    (the detector's "still rising")."""
    rows = []
    steps = list(curves["steps"])
    for name, hits in curves["hits"].items():
        rate = pd.Series(hits.mean(1) if hits.shape[1] else np.nan, index=steps)
        row = {"curve": CURVES[name], "key": name}
        for th in thresholds:
            first, lo, hi = crossing_with_interval(hits, steps, th, seed=seed)
            before = steps[steps.index(first) - 1] if first is not None and first != steps[0] \
                else None
            row[f"step_{th:g}"] = first
            row[f"x_fit_{th:g}"] = _times(first, fitted)
            row[f"x_fit_{th:g}_before"] = _times(before, fitted) if before is not None \
                else math.nan
            row[f"x_fit_{th:g}_lo"] = _times(lo, fitted)
            row[f"x_fit_{th:g}_hi"] = _times(hi, fitted)
        end = float(rate.iloc[-1])
        lo, hi = wilson(end, hits.shape[1])
        row.update(end=round(end, 4), end_lo=round(lo, 4), end_hi=round(hi, 4),
                   n=hits.shape[1], rising=still_rising(rate, rising_at))
        rows.append(row)
    out = pd.DataFrame(rows)
    for th in thresholds:            # steps stay ints, None where the curve never arrived
        out[f"step_{th:g}"] = pd.Series([r[f"step_{th:g}"] for r in rows], dtype=object)
    return out


def study_at_clock(clock: float = CLOCK, acc_threshold: float = ACC_AT,
                   bridge_threshold: float = BRIDGE_AT) -> pd.DataFrame:
    """The control that the detector discriminates: its rule applied to the study's own
    TRM crossings (``study.REGIME_NUMBERS``, lenient rules), as multiples of each run's
    train-accuracy step, seen only up to ``clock`` times that step -- what a run sized
    like this chapter's would have shown of the study's curves."""
    cols = {HALFWAY_AT: "05", GROKKED_AT: "09"}        # the thresholds the study reports
    for th in (acc_threshold, bridge_threshold):
        if th not in cols:
            raise ValueError(f"threshold: {th!r} is not allowed; allowed: the study reports "
                             f"crossings of {HALFWAY_AT:g} and {GROKKED_AT:g} only")
    rows = []
    for r in REGIME_NUMBERS.itertuples():
        seen = {}
        for key, th in (("ood", acc_threshold), ("bridge", bridge_threshold)):
            step = getattr(r, f"{key}_{cols[th]}")
            x = float(step) / r.train_09 if not pd.isna(step) else math.inf
            seen[key] = x
        acc, circuit = seen["ood"] <= clock, seen["bridge"] <= clock
        rows.append(dict(regime=r.regime, ood_x_fit=round(seen["ood"], 2),
                         bridge_x_fit=round(seen["bridge"], 2),
                         verdict={(True, True): CIRCUIT_WITH_ACCURACY, (True, False): FAKE,
                                  (False, True): CIRCUIT_ONLY, (False, False): NEITHER}[
                                      (acc, circuit)]))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the chapter's tables
CAP_X = 30          # a run is long enough when it grokked, or ran this many fitted steps


def above_chance(bridge: pd.DataFrame, n: int) -> pd.DataFrame:
    """The lenient rule's curve counted only where it beats its own chance rate: at each
    checkpoint, its rate where its 95 % Wilson interval lies above that of the same rule
    asked about another query's bridge (``lenient_control``), else 0."""
    out = bridge.copy()
    ctl = bridge[bridge["rule"] == "lenient_control"].set_index("step")["rate"]
    rows = out["rule"] == "lenient"
    if not len(ctl) or not rows.any():
        return out
    beats = [wilson(r, n)[0] > wilson(float(ctl.get(st, 1.0)), n)[1]
             for st, r in zip(out.loc[rows, "step"], out.loc[rows, "rate"])]
    out.loc[rows, "rate"] = np.where(beats, out.loc[rows, "rate"], 0.0)
    return out


def chapter_tables(runs: dict, probe: str = "test_inferred_ood", max_queries: int = 500,
                   acc_threshold: float = ACC_AT, bridge_threshold: float = BRIDGE_AT):
    """(curves, verdicts, crossings) over ``{(regime, arch, seed): run}``, all read from the
    per-query curves of ``query_curves`` at the runs' checkpoints.

    ``curves``: regime, arch, seed, step, curve (``CURVES``' names), value. ``verdicts``:
    one row per run and bridge rule (``detect``), with the fitted step (train_inferred 0.9,
    the study's reference) and the memorized one (0.99), how many fitted steps the run
    lasted (``clock``), whether held-out ID grokked (the run's stop), the rules' positive
    checks, the lenient rule's chance rate and Wilson intervals on the end accuracy; the
    lenient rule's circuit counts only above its chance rate (``above_chance``); a run is
    complete when it grokked or lasted ``CAP_X`` fitted steps. ``crossings``: one row per
    run and curve (``crossing_table``).
    """
    from ..analysis.definitions import fitted_step, grokked_step, memorized_step
    curves, verdicts, crossings = [], [], []
    for (regime, arch, seed), run in runs.items():
        key = dict(regime=regime, arch=arch, seed=seed)
        bridge = bridge_over_training(run, probe, max_queries=max_queries)
        c = bridge.attrs["curves"]
        acc = run.accuracy()
        fit, grok = fitted_step(acc), grokked_step(acc)
        exact = pd.Series(c["hits"]["exact"].mean(1) if c["n"] else math.nan, index=c["steps"])
        curves.append(pd.DataFrame(dict(**key, step=exact.index, curve=CURVES["exact"],
                                        value=exact.values)))
        curves.append(bridge.assign(**key, curve=bridge["rule"].map(CURVES))
                      .rename(columns={"rate": "value"})[["regime", "arch", "seed", "step",
                                                          "curve", "value"]])
        strict, lenient = c["strict_check"], c["lenient_check"]
        ctl = bridge[bridge["rule"] == "lenient_control"]["rate"]
        chance = float(ctl.max()) if len(ctl) else math.nan
        complete = bool(fit) and (grok is not None or run.steps >= CAP_X * fit)
        d = detect(pd.DataFrame({probe: exact}), above_chance(bridge, c["n"]), probe,
                   acc_threshold, bridge_threshold, strict_readable=strict["readable"],
                   lenient_readable=lenient["readable"], fitted=fit is not None,
                   complete=complete)
        for col, v in reversed(list(key.items())):
            d.insert(0, col, v)
        d["fitted"], d["memorized"], d["grokked"] = fit, memorized_step(acc), grok
        d["steps"] = run.steps
        d["clock"] = round(run.steps / fit, 1) if fit else math.nan
        d["complete"] = complete
        d["strict_stage"] = c["stage"]
        d["strict_check"], d["strict_check_n"] = round(strict["rate"], 4), strict["answered"]
        d["lenient_check"] = round(lenient["rate"], 4)
        d["control_end"] = round(float(ctl.iloc[-1]), 4) if len(ctl) else math.nan
        d["control_peak"] = round(chance, 4)
        d["acc_n"] = c["n"]
        ci = [tuple(round(x, 4) for x in wilson(a, c["n"])) for a in d["acc_end"]]
        d["acc_end_lo"], d["acc_end_hi"] = [x[0] for x in ci], [x[1] for x in ci]
        verdicts.append(d)
        ths = sorted({acc_threshold, bridge_threshold, HALFWAY_AT, GROKKED_AT})
        crossings.append(crossing_table(c, fit, ths, rising_at=min(acc_threshold,
                                                                   bridge_threshold))
                         .assign(**key, fitted=fit,
                                 id_x_fit=_times(grok, fit) if fit else math.nan))
    return (pd.concat(curves, ignore_index=True), pd.concat(verdicts, ignore_index=True),
            pd.concat(crossings, ignore_index=True))


def side_by_side(verdicts: pd.DataFrame, crossings: pd.DataFrame, arch: str = "trm",
                 rule: str = "lenient", acc_threshold: float = ACC_AT,
                 bridge_threshold: float = BRIDGE_AT) -> pd.DataFrame:
    """Our runs of one architecture and rule next to the study's TRM. The study's "OOD"
    curve is a lenient target rate (t top-1 at any stage and position): ours of the same
    quantity stands beside it, and our exact match beside that. Crossings are multiples of
    each run's fitted step (training accuracy 0.9, the study's reference); the study's verdict is ``study_at_clock``'s (its curves seen
    up to the clock our runs get)."""
    ours = verdicts[(verdicts["arch"] == arch) & (verdicts["rule"] == rule)]
    classes = ours.groupby("regime", sort=False)["verdict"].agg(
        lambda v: "; ".join(f"{n} x {c}" for c, n in v.value_counts().items()))
    ours = ours.groupby("regime", sort=False)[["clock", "target_lenient_end", "acc_end",
                                               "bridge_end"]].median().reset_index()
    ours["verdict"] = ours["regime"].map(classes)          # medians over seeds; classes
    mine = crossings[crossings["arch"] == arch]
    x = mine.pivot_table(index="regime", columns="key", values=f"x_fit_{acc_threshold:g}",
                         aggfunc="median")
    xb = mine.pivot_table(index="regime", columns="key", values=f"x_fit_{bridge_threshold:g}",
                          aggfunc="median")
    ours = ours.assign(**{
        "ours: OOD target x fit": ours["regime"].map(x.get("target_lenient", {})),
        "ours: OOD exact x fit": ours["regime"].map(x.get("exact", {})),
        f"ours: bridge ({rule}) x fit": ours["regime"].map(xb.get(rule, {}))}).rename(
        columns={"clock": "ours: run length x fit", "target_lenient_end":
                 "ours: OOD target, lenient (end)", "acc_end": "ours: OOD exact match (end)",
                 "bridge_end": f"ours: bridge ({rule}) (end)", "verdict": "ours: verdict"})
    study = study_at_clock(CLOCK, acc_threshold, bridge_threshold).rename(columns={
        "ood_x_fit": "study: OOD target x fit", "bridge_x_fit": "study: bridge (lenient) x fit",
        "verdict": f"study: verdict at {CLOCK}x"})
    ends = REGIME_NUMBERS[["regime", "ood_end", "bridge_end"]].rename(columns={
        "ood_end": "study: OOD target (end, 1.5M)", "bridge_end": "study: bridge (end, 1.5M)"})
    return ours.merge(study, on="regime", how="left").merge(ends, on="regime", how="left"
                                                           ).reset_index(drop=True)


def claim2_runs(verdicts: pd.DataFrame, crossings: pd.DataFrame) -> list:
    """Per (regime, architecture): what ``grokbook claims --json`` prints for claim 2 -- the
    fitted step, steps trained and their multiple of it, each rule's class and positive
    check, and per curve the crossing steps and multiples of 0.5 and 0.9 (with bootstrap
    intervals; a curve that did not arrive reads "> <run length>"), the end value with its
    interval and whether it was still rising."""
    def censored(col, value, steps, clock):
        if col.startswith("step_") and (value is None or value != value):
            return f"> {steps}"
        if col.startswith("x_fit") and value == math.inf:
            return f"> {clock:g}" if clock == clock else None
        return value

    out = []
    for (regime, arch, seed), v in verdicts.groupby(["regime", "arch", "seed"], sort=False):
        by_rule = v.set_index("rule")
        first = v.iloc[0]
        cr = crossings[(crossings["regime"] == regime) & (crossings["arch"] == arch)
                       & (crossings["seed"] == seed)]
        keep = [c for c in cr.columns if c.startswith(("step_", "x_fit", "end", "rising"))]
        out.append(dict(
            regime=regime, arch=arch, seed=seed, fitted=first["fitted"],
            memorized=first["memorized"], grokked=first["grokked"],
            complete=bool(first["complete"]), control_peak=first["control_peak"],
            steps=int(first["steps"]),
            clock=first["clock"], acc_peak=first["acc_peak"], n=int(first["acc_n"]),
            verdict={r: by_rule.loc[r, "verdict"] for r in by_rule.index},
            strict_check=first["strict_check"], lenient_check=first["lenient_check"],
            curves={row["key"]: {c: censored(c, row[c], int(first["steps"]), first["clock"])
                                 for c in keep} for _, row in cr.iterrows()}))
    return out


def describe_claim2(per_run: list, acc_threshold: float = ACC_AT,
                    bridge_threshold: float = BRIDGE_AT) -> str:
    """One line: the positive control, then each hop-2-only run's crossings."""
    def x(r, key):
        th = bridge_threshold if key in BRIDGE_RULES else acc_threshold
        v = r["curves"].get(key, {}).get(f"x_fit_{th:g}", math.inf)
        if isinstance(v, str):
            return f"{v}x"                       # did not arrive within the run: "> 15.4x"
        return "never" if v is None or not math.isfinite(v) else f"{v:g}x"

    parts = []
    for r in per_run:
        if r["regime"] == "both_full" and r["arch"] == ARCHS[0]:
            parts.append(f"control {r['arch']} seed {r.get('seed')} both-full OOD peak "
                         f"{r['acc_peak']:.2f}")
    for r in per_run:
        if r["regime"] == "hop2_only":
            ran = (f"ran {r['clock']:g}x fit" if r["fitted"] else "never fitted")
            parts.append(f"hop-2-only {r['arch']} seed {r.get('seed')} ({ran}): OOD "
                         f"{acc_threshold:g} at {x(r, 'exact')}, lenient bridge "
                         f"{bridge_threshold:g} at "
                         f"{x(r, 'lenient')} -> {r['verdict'].get('lenient')}")
    return "; ".join(parts) or "no runs"


def lenient_gap(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per run: bridge rate at the end under each rule, the lenient rule's excess over the
    strict one, and the lenient rate for a wrong bridge (its chance level)."""
    w = verdicts.pivot_table(index=["regime", "arch", "seed"], columns="rule",
                             values="bridge_end")
    w["lenient - strict"] = w["lenient"] - w["strict"]
    ctrl = verdicts.groupby(["regime", "arch", "seed"])["control_end"].first()
    w["lenient, wrong b"] = ctrl
    return w.reset_index().round(4)


def where_lenient_finds(run, probe: str = "test_inferred_ood", step: int | None = None,
                        max_queries: int | None = 500) -> pd.DataFrame:
    """At one checkpoint: for the queries the lenient rule counts but the strict one does
    not, the (stage, position) sites where b is top-1, as fractions of those queries."""
    ds = run.dataset
    q = _two_hop_probe(ds, probe, max_queries)
    model = run.load_model(step)
    lens = logit_lens(model, ds, q, targets=("b",))
    stage = _strict_stage(model)
    f = bridge_found(lens, stage)
    extra = set(f.loc[f["lenient"] & ~f["strict"], "query"])
    hits = lens[(lens["rank"] == 1) & lens["query"].isin(extra)]
    out = hits.groupby(["stage", "position"], observed=True)["query"].nunique()
    out = (out / max(len(extra), 1)).rename("fraction").reset_index()
    out["queries"] = len(extra)
    return out.sort_values("fraction", ascending=False).reset_index(drop=True)


# ---------------------------------------------------------------- charts
def regime_curves_chart(curves: pd.DataFrame, width: int = 170, height: int = 110):
    """One panel per run (row: architecture, column: regime): OOD accuracy and the three
    bridge curves over training, with a regime selector bound to a drop-down."""
    import altair as alt
    regimes = list(dict.fromkeys(curves["regime"]))
    pick = alt.param(name="regime_pick", value="all",
                     bind=alt.binding_select(options=["all"] + regimes, name="regime "))
    colors = alt.Scale(domain=["OOD accuracy", "OOD target, lenient (the study's 'accuracy')",
                               "bridge strict", "bridge lenient", "bridge lenient, wrong b"],
                       range=["#d62728", "#f4a582", "#1f77b4", "#7fb2e5", "#bbbbbb"])
    return alt.Chart(curves).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("step:Q", title="step"),
        y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title=None),
        color=alt.Color("curve:N", scale=colors, title=None),
        strokeDash=alt.condition("datum.curve == 'bridge lenient, wrong b'",
                                 alt.value([3, 3]), alt.value([1, 0])),
        detail="seed:N",
        tooltip=["regime", "arch", "seed", "step", "curve",
                 alt.Tooltip("value:Q", format=".3f")],
    ).add_params(pick).transform_filter(
        "regime_pick == 'all' || datum.regime == regime_pick"
    ).properties(width=width, height=height).facet(
        row=alt.Row("arch:N", sort=list(ARCHS), title=None),
        column=alt.Column("regime:N", sort=regimes, title=None))


def verdict_grid_chart(verdicts: pd.DataFrame, rule: str = "strict"):
    """Grid regime x architecture, one cell per run, coloured by the detector's verdict."""
    import altair as alt
    d = verdicts[verdicts["rule"] == rule].assign(
        run=lambda t: [f"{a} seed {s}" for a, s in zip(t["arch"], t["seed"])])
    base = alt.Chart(d).encode(
        x=alt.X("regime:N", sort=list(REGIMES), title=None),
        y=alt.Y("run:N", title=None))
    cells = base.mark_rect().encode(
        color=alt.Color("verdict:N", scale=alt.Scale(domain=list(CLASSES), range=CLASS_COLORS)),
        tooltip=["regime", "arch", "seed", "verdict", "acc_end", "bridge_end"])
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("label:N")).transform_calculate(
        label="format(datum.acc_end, '.2f') + ' / ' + format(datum.bridge_end, '.2f')")
    return (cells + text).properties(width=420, height=24 * d["run"].nunique(),
                                     title=f"verdicts ({rule} rule): OOD acc / bridge at end")


def describe_verdicts(verdicts: pd.DataFrame, acc_threshold: float = ACC_AT,
                      bridge_threshold: float = BRIDGE_AT) -> str:
    """Markdown: what the detector found, phrased from the computed verdicts."""
    def runs_of(rule, verdict):
        d = verdicts[(verdicts["rule"] == rule) & (verdicts["verdict"] == verdict)]
        return [f"{r} / {a} / seed {s}" for r, a, s in zip(d["regime"], d["arch"], d["seed"])]

    n = verdicts[["regime", "arch", "seed"]].drop_duplicates().shape[0]
    if "acc_n" in verdicts:
        q = int(verdicts["acc_n"].min())
        lo, hi = wilson(0.5, q)
        lines_n = (f" Exact match is read on {q} OOD test queries per run: a 95 % interval "
                   f"of ±{(hi - lo) / 2:.2f} at 0.5 (columns acc_end_lo / acc_end_hi).")
    else:
        lines_n = ""
    clocks = verdicts.drop_duplicates(["regime", "arch", "seed"])["clock"].dropna()
    ran = (f" The runs lasted {clocks.min():g}-{clocks.max():g}x their fitted step "
           f"(column clock: training accuracy 0.9, the study's reference; a run ends at "
           f"twice its grokked step or at its budget, and counts as long enough when it "
           f"grokked or lasted {CAP_X}x)." if len(clocks) else "")
    lines = [f"Thresholds: OOD exact match ≥ {acc_threshold:g} and bridge found ≥ "
             f"{bridge_threshold:g} at some checkpoint of the run (the first crossing; a "
             f"run's class depends on which curves arrive, the tables above say when); "
             f"{n} runs.{ran} A run whose curve never arrived but was still rising at the "
             f"end (a gain of ≥ {RISING_BY:g} over the last {RISING_OVER:.0%} of the run) is "
             f"*{STILL_RISING}*: too short to say. The strict rule reads the middle stage, "
             f"fixed in advance; where a rule finds b for fewer than {BRIDGE_READABLE:.0%} of "
             f"the trained two-hop facts the run answers (columns strict_check, "
             f"lenient_check), its verdict is *not measured (... rule blind)*; the lenient "
             f"rule counts a checkpoint only where its rate is above its own chance rate "
             f"(another query's b, column control_peak), intervals apart. A run cut at its "
             f"budget before it grokked or lasted {CAP_X}x, whose curve never arrived, is "
             f"*{TOO_SHORT}*."
             + lines_n]
    for rule in BRIDGE_RULES:
        fake = runs_of(rule, FAKE)
        counts = verdicts[verdicts["rule"] == rule]["verdict"].value_counts()
        tally = ", ".join(f"{counts[c]} × *{c}*" for c in CLASSES if counts.get(c, 0))
        lines.append(f"- **{rule} rule**: {tally}.")
        rising = runs_of(rule, STILL_RISING)
        if fake:
            lines.append(f"  Fake grokking (accuracy without the bridge) appears in: "
                         f"{', '.join(fake)}.")
        elif rising:
            lines.append(f"  No run shows fake grokking under this rule, but {len(rising)} "
                         f"were still rising when they ended ({', '.join(rising)}): too short "
                         f"to tell.")
        elif all(str(c).startswith("not measured") for c in counts.index):
            lines.append("  No run could be classified under this rule.")
        else:
            lines.append("  No classified run shows fake grokking under this rule.")
    best = verdicts.sort_values("acc_peak", ascending=False).iloc[0]
    if best["acc_peak"] < acc_threshold:
        lines.append(f"\nNo run reaches the accuracy threshold: the best OOD accuracy at any "
                     f"checkpoint is {best['acc_peak']:.2f} ({best['regime']} / "
                     f"{best['arch']}).")
    return "\n".join(lines)


def describe_gap(gap: pd.DataFrame) -> str:
    """Markdown: how much the lenient rule overstates, from ``lenient_gap``'s table."""
    g = gap.dropna(subset=["lenient - strict"])
    if g.empty:
        return "No bridge rates to compare."
    worst = g.sort_values("lenient - strict", ascending=False).iloc[0]
    return (f"Averaged over the {len(g)} runs, the lenient rule reports "
            f"{g['lenient'].mean():.2f} where the strict rule reports {g['strict'].mean():.2f} "
            f"(largest gap {worst['lenient - strict']:.2f}, {worst['regime']} / "
            f"{worst['arch']} / seed {worst['seed']}). For a *wrong* bridge, the b of another query, the lenient rule "
            f"still fires in {g['lenient, wrong b'].mean():.2f} of the queries on average "
            f"(up to {g['lenient, wrong b'].max():.2f}): that much of a lenient rate can "
            f"be reached without the bridge playing any role.")


# ---------------------------------------------------------------- the order of events
EVENTS = {"exact": "OOD exact 0.5", "target_lenient": "OOD target (lenient) 0.5",
          "strict": "bridge strict 0.5", "lenient": "bridge lenient 0.5",
          "id": "held-out ID 0.9"}


def events_table(crossings: pd.DataFrame, arch: str = SUBJECT) -> pd.DataFrame:
    """Per regime: when each event happened, as a multiple of the run's fitted step --
    this book's median over seeds (inf: not within the runs) with the seeds' values, and
    the study's published steps over its train-accuracy step."""
    mine = crossings[crossings["arch"] == arch]
    rows = []
    for regime, g in mine.groupby("regime", sort=False):
        for key, name in EVENTS.items():
            vals = (g.drop_duplicates("seed")["id_x_fit"] if key == "id" else
                    g.loc[g["key"] == key, f"x_fit_{HALFWAY_AT:g}"])
            vals = pd.to_numeric(vals, errors="coerce").dropna()
            if len(vals):
                rows.append(dict(regime=regime, event=name, source="this book (median)",
                                 x_fit=float(vals.median()), seeds=len(vals),
                                 values=", ".join(f"{v:g}" for v in vals)))
    for r in REGIME_NUMBERS.itertuples():
        for key, col in (("target_lenient", "ood_05"), ("lenient", "bridge_05")):
            step = getattr(r, col)
            rows.append(dict(regime=r.regime, event=EVENTS[key], source="the study",
                             x_fit=float(step) / r.train_09 if not pd.isna(step) else math.inf,
                             seeds=1, values=""))
    return pd.DataFrame(rows, columns=["regime", "event", "source", "x_fit", "seeds", "values"])


def events_chart(events: pd.DataFrame):
    """The order of events per regime: this book's medians over seeds beside the study's
    (x: multiples of the fitted step, log scale; an event not within the runs is drawn at
    the right edge, marked "never")."""
    import altair as alt
    finite = events["x_fit"].replace(math.inf, math.nan).dropna()
    edge = float(finite.max() * 1.5) if len(finite) else 10.0
    d = events.assign(shown=events["x_fit"].where(events["x_fit"] != math.inf, edge),
                      never=events["x_fit"] == math.inf)
    return alt.Chart(d).mark_point(filled=True, size=80).encode(
        x=alt.X("shown:Q", scale=alt.Scale(type="log"), title="multiple of the fitted step"),
        y=alt.Y("source:N", title=None),
        color=alt.Color("event:N"), shape=alt.Shape("never:N", title="never within the run"),
        row=alt.Row("regime:N", sort=list(FIGURE_REGIMES), title=None),
        tooltip=["regime:N", "event:N", "source:N", alt.Tooltip("x_fit:Q", format=".2f"),
                 "values:N"]).properties(width=420, height=50)
