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
- ``crossing_steps`` / ``classify`` / ``detect``: the steps where accuracy and bridge rates
  first reach thresholds, and one of four verdicts (``CLASSES``).
- the study's TRM numbers are ``chapters.study.REGIME_NUMBERS``.
- ``chapter_configs(preset)``: the 15 runs of the chapter (5 regimes x 3 architectures).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ..analysis.circuit import middle_stage
from ..analysis.definitions import BRIDGE_READABLE, GROKKED_AT, HALFWAY_AT, wilson
from ..analysis.lens import bridge_found, bridge_rates, lenient_rate, logit_lens, strict_check
from ..core.config import ARCH_NAMES, preset
from ..core.progress import plan
from ..core.regimes import REGIMES
from ..core.store import train_many
from .study import REGIME_NUMBERS

CIRCUIT_WITH_ACCURACY = "circuit with accuracy"
FAKE = "accuracy without circuit"          # the study's "fake grokking"
CIRCUIT_ONLY = "circuit without accuracy"
NEITHER = "neither"
STILL_RISING = "not measured (still rising)"
STRICT_BLIND = "not measured (strict rule blind)"   # failed analysis.lens.strict_check
CLASSES = (CIRCUIT_WITH_ACCURACY, FAKE, CIRCUIT_ONLY, NEITHER, STILL_RISING, STRICT_BLIND)
RISING_BY = 0.05        # a curve below its threshold that gained this much over the last
RISING_OVER = 0.25      # quarter of the run was cut off while rising: no class yet
BRIDGE_RULES = ("strict", "lenient")
ARCHS = ARCH_NAMES  # the subject (trm), Wang's looped transformer, the dense transformer
ACC_AT = BRIDGE_AT = GROKKED_AT  # the detector's thresholds on OOD accuracy and bridge rates


# ---------------------------------------------------------------- the chapter's runs
# At cpu the runs are short (1,500 steps, d_model 64): about where they finish memorizing.
# Their graph holds 20 % OOD facts (the preset: 10 %), so that exact match is read on 390
# OOD test queries (a 95 % interval of +-0.05) instead of 101.
_SCHEDULE = {
    "test": {"train.max_steps": 80, "train.eval_every": 20, "train.eval_dense_until": 80,
             "train.checkpoint_every": 40},
    "cpu": {"data.ood_ratio": 0.2,
            "train.warmup_steps": 50, "train.max_steps": 1500, "train.eval_every": 50,
            "train.eval_dense_until": 1500, "train.checkpoint_every": 150},
}


def chapter_configs(preset_name: str = "cpu", regimes=None, archs=ARCHS) -> dict:
    """{(regime, arch): Config} for the fake-grokking chapter: every regime of
    ``core.regimes`` x each architecture of ``core.config.ARCHITECTURES`` at the preset's
    scale and graph, on the chapter's schedule (``_SCHEDULE``). The study's runs took 1.5M
    steps."""
    out = {}
    for regime in regimes or REGIMES:
        for arch in archs:
            out[(regime, arch)] = preset(preset_name, arch=arch, **{
                "data.regime": regime, **_SCHEDULE.get(preset_name, {})})
    return out


def train_chapter(preset_name: str = "cpu", regimes=None, archs=ARCHS, store=None,
                  progress: bool = False) -> dict:
    """Train (or load from the store) every run of ``chapter_configs``."""
    configs = chapter_configs(preset_name, regimes, archs)
    with plan(configs.values(), label="regimes x architectures"):
        runs = train_many(list(configs.values()), store=store, progress=progress)
    return dict(zip(configs, runs))


# ---------------------------------------------------------------- bridge over training
def _two_hop_probe(ds, probe: str, max_queries: int | None):
    q = ds.probes[probe]
    keep = np.flatnonzero(q["r2"] >= 0)[:max_queries]
    return {k: v[keep] for k, v in q.items()}


def _strict_stage(model) -> str:
    """The strict rule's stage, fixed in advance: the middle of the model's stages."""
    return middle_stage(model.stage_names)


@torch.no_grad()
def bridge_over_training(run, probe: str = "test_inferred_ood", rule: str = "both",
                         stage: str | None = None, steps=None, max_queries: int | None = 500,
                         control: bool = True, seed: int = 0) -> pd.DataFrame:
    """Tidy table: step, rule, rate, n, stage (the strict rule's stage), per checkpoint.

    ``rule``: ``strict``, ``lenient``, or ``both``. The strict rule reads one stage for the
    whole run, fixed in advance: ``stage``, or by default the model's middle stage (never
    picked by looking at these queries). With ``control``, a ``lenient_control`` row gives
    the lenient rule's rate for a wrong bridge (the b of another query, drawn with
    ``seed``): what the lenient rule "finds" by chance. ``attrs["strict_check"]``: the
    strict rule's positive check (``analysis.lens.strict_check``) on the trained two-hop
    facts at the last checkpoint.
    """
    if rule not in ("strict", "lenient", "both"):
        raise ValueError(f"rule: {rule!r} is not allowed; allowed: strict, lenient, both")
    ds = run.dataset
    q = _two_hop_probe(ds, probe, max_queries)
    steps = list(run.checkpoints if steps is None else steps)
    last = run.load_model(run.checkpoints[-1])
    stage = stage or _strict_stage(last)
    check = strict_check(last, ds, _two_hop_probe(ds, "train_inferred", max_queries), stage)
    wrong = dict(q, b=np.random.default_rng(seed).permutation(q["b"]))
    rows = []
    for step in steps:
        model = run.load_model(step)
        lens = logit_lens(model, ds, q, targets=("b", "t") if rule == "both" else ("b",))
        r = bridge_rates(lens[lens["target"] == "b"], stage)
        for name in BRIDGE_RULES:
            if rule in (name, "both"):
                rows.append(dict(step=step, rule=name, rate=r[name], n=r["n"], stage=stage))
        if rule == "both":   # the study's OOD curve, on the same queries
            rows.append(dict(step=step, rule="target_lenient", rate=lenient_rate(lens, "t"),
                             n=r["n"], stage=stage))
        if control:
            c = bridge_rates(logit_lens(model, ds, wrong, targets=("b",)), stage)
            rows.append(dict(step=step, rule="lenient_control", rate=c["lenient"], n=c["n"],
                             stage=stage))
    out = pd.DataFrame(rows, columns=["step", "rule", "rate", "n", "stage"])
    out.attrs["strict_check"] = check
    return out


# ---------------------------------------------------------------- crossings and verdicts
def first_crossing(series: pd.Series, threshold: float):
    """First index (step) where ``series`` reaches ``threshold``; None if never."""
    s = series.dropna()
    hit = s.index[s >= threshold]
    return int(hit[0]) if len(hit) else None


def _end(series: pd.Series, tail: int) -> float:
    s = series.dropna().sort_index()
    return float(s.iloc[-tail:].mean()) if len(s) else math.nan


def still_rising(series: pd.Series, threshold: float) -> bool:
    """Whether a curve (index: step) ended below ``threshold`` after gaining at least
    ``RISING_BY`` over the last ``RISING_OVER`` of the run: cut off, not settled."""
    s = series.dropna().sort_index()
    if len(s) < 2 or s.iloc[-1] >= threshold:
        return False
    cut = s.index[-1] - RISING_OVER * (s.index[-1] - s.index[0])
    return bool(s.iloc[-1] - s[s.index <= cut].iloc[-1] >= RISING_BY)


def classify(accuracy: pd.Series, bridge: pd.Series, acc_threshold: float = ACC_AT,
             bridge_threshold: float = BRIDGE_AT, tail: int = 1) -> str:
    """One of ``CLASSES`` from an accuracy curve and a bridge-found curve (index: step).

    A run *has accuracy* if its accuracy at the end (mean of the last ``tail`` values)
    reaches ``acc_threshold``, and *has the circuit* if its bridge rate at the end reaches
    ``bridge_threshold``. A curve short of its threshold that was still rising when the
    run ended (``still_rising``) leaves the run *not measured*.
    """
    if still_rising(accuracy, acc_threshold) or still_rising(bridge, bridge_threshold):
        return STILL_RISING
    acc = _end(accuracy, tail) >= acc_threshold
    circuit = _end(bridge, tail) >= bridge_threshold
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
           acc_threshold: float = ACC_AT, bridge_threshold: float = BRIDGE_AT, thresholds=(HALFWAY_AT, GROKKED_AT),
           tail: int = 1, strict_readable: bool = True) -> pd.DataFrame:
    """The detector: one row per bridge rule with crossings, end values and the verdict.

    ``accuracy`` is ``run.accuracy()`` (index step, one column per probe); ``bridge`` is
    ``bridge_over_training``'s table (step, rule, rate). Accuracy is taken at the
    checkpoint steps only, so both curves are read at the same steps. With
    ``strict_readable`` False (the strict rule failed its positive check) the strict
    rule's verdict is ``STRICT_BLIND``: its low bridge rate says nothing.
    """
    acc = accuracy[acc_probe]
    rows = []
    for rule in [r for r in BRIDGE_RULES if r in set(bridge["rule"])]:
        b = bridge[bridge["rule"] == rule].set_index("step")["rate"].sort_index()
        a = acc.reindex(b.index) if set(b.index) <= set(acc.index) else acc
        t = bridge[bridge["rule"] == "target_lenient"].set_index("step")["rate"]
        rows.append(dict(rule=rule, **crossing_steps(a, b, thresholds),
                         acc_end=round(_end(a, tail), 4), bridge_end=round(_end(b, tail), 4),
                         target_lenient_end=round(_end(t, tail), 4) if len(t) else math.nan,
                         acc_peak=round(float(a.max()), 4),
                         verdict=STRICT_BLIND if rule == "strict" and not strict_readable
                         else classify(a, b, acc_threshold, bridge_threshold, tail)))
    return pd.DataFrame(rows)


def study_verdicts(acc_threshold: float = ACC_AT, bridge_threshold: float = BRIDGE_AT) -> pd.DataFrame:
    """The same rule applied to the study's end values (its lenient bridge rule)."""
    s = REGIME_NUMBERS
    v = [classify(pd.Series([a]), pd.Series([b]), acc_threshold, bridge_threshold)
         for a, b in zip(s["ood_end"], s["bridge_end"])]
    return s[["regime", "ood_end", "bridge_end"]].assign(verdict=v)


# ---------------------------------------------------------------- the chapter's tables
def chapter_tables(runs: dict, probe: str = "test_inferred_ood", max_queries: int = 500,
                   acc_threshold: float = ACC_AT, bridge_threshold: float = BRIDGE_AT):
    """(curves, verdicts) over ``{(regime, arch): run}``.

    ``curves``: regime, arch, step, curve (``OOD accuracy``, ``bridge strict``, ``bridge
    lenient``, ``bridge lenient, wrong b``), value. ``verdicts``: one row per run and rule.
    """
    curves, verdicts = [], []
    names = {"strict": "bridge strict", "lenient": "bridge lenient",
             "lenient_control": "bridge lenient, wrong b",
             "target_lenient": "OOD target, lenient (the study's 'accuracy')"}
    for (regime, arch), run in runs.items():
        bridge = bridge_over_training(run, probe, max_queries=max_queries)
        acc = run.accuracy()
        a = acc[probe].reindex(sorted(set(bridge["step"])))
        curves.append(pd.DataFrame(dict(regime=regime, arch=arch, step=a.index,
                                        curve="OOD accuracy", value=a.values)))
        curves.append(bridge.assign(regime=regime, arch=arch, curve=bridge["rule"].map(names))
                      .rename(columns={"rate": "value"})[["regime", "arch", "step", "curve",
                                                          "value"]])
        check = bridge.attrs.get("strict_check", {"rate": math.nan, "answered": 0,
                                                   "readable": False})
        d = detect(acc, bridge, probe, acc_threshold, bridge_threshold,
                   strict_readable=check["readable"])
        d.insert(0, "arch", arch)
        d.insert(0, "regime", regime)
        d["strict_stage"] = bridge["stage"].iloc[0] if len(bridge) else None
        d["strict_check"] = round(check["rate"], 4)
        d["strict_check_n"] = check["answered"]
        c = bridge[bridge["rule"] == "lenient_control"]["rate"]
        d["control_end"] = round(float(c.iloc[-1]), 4) if len(c) else math.nan
        n = len(run.dataset.probes[probe]["h"])      # exact match is read on the whole probe
        d["acc_n"] = n
        ci = [tuple(round(x, 4) for x in wilson(a, n)) for a in d.get("acc_end", [])]
        d["acc_end_lo"], d["acc_end_hi"] = [c[0] for c in ci], [c[1] for c in ci]
        verdicts.append(d)
    return pd.concat(curves, ignore_index=True), pd.concat(verdicts, ignore_index=True)


def side_by_side(verdicts: pd.DataFrame, arch: str = "trm", rule: str = "lenient",
                 acc_threshold: float = ACC_AT, bridge_threshold: float = BRIDGE_AT) -> pd.DataFrame:
    """Our runs of one architecture and rule next to the study's TRM numbers. The study's
    "OOD" curve is a lenient target rate (t top-1 at any stage and position): ours of the
    same quantity stands beside it, and our exact match beside that."""
    ours = verdicts[(verdicts["arch"] == arch) & (verdicts["rule"] == rule)]
    ours = ours[["regime", "target_lenient_end", "acc_end", "bridge_end", "verdict"]].rename(
        columns={"target_lenient_end": "ours: OOD target, lenient", "acc_end":
                 "ours: OOD exact match", "bridge_end": f"ours: bridge ({rule})",
                 "verdict": "ours: verdict"})
    study = study_verdicts(acc_threshold, bridge_threshold).rename(columns={
        "ood_end": "study: OOD target, lenient", "bridge_end": "study: bridge (lenient)",
        "verdict": "study: verdict"})
    return ours.merge(study, on="regime", how="left").reset_index(drop=True)


def lenient_gap(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per run: bridge rate at the end under each rule, the lenient rule's excess over the
    strict one, and the lenient rate for a wrong bridge (its chance level)."""
    w = verdicts.pivot_table(index=["regime", "arch"], columns="rule", values="bridge_end")
    w["lenient - strict"] = w["lenient"] - w["strict"]
    ctrl = verdicts.groupby(["regime", "arch"])["control_end"].first()
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
        tooltip=["regime", "arch", "step", "curve", alt.Tooltip("value:Q", format=".3f")],
    ).add_params(pick).transform_filter(
        "regime_pick == 'all' || datum.regime == regime_pick"
    ).properties(width=width, height=height).facet(
        row=alt.Row("arch:N", sort=list(ARCHS), title=None),
        column=alt.Column("regime:N", sort=regimes, title=None))


def verdict_grid_chart(verdicts: pd.DataFrame, rule: str = "strict"):
    """Grid regime x architecture, one cell per run, coloured by the detector's verdict."""
    import altair as alt
    d = verdicts[verdicts["rule"] == rule]
    base = alt.Chart(d).encode(
        x=alt.X("regime:N", sort=list(REGIMES), title=None),
        y=alt.Y("arch:N", sort=list(ARCHS), title=None))
    cells = base.mark_rect().encode(
        color=alt.Color("verdict:N", scale=alt.Scale(
            domain=list(CLASSES), range=["#2ca02c", "#d62728", "#1f77b4", "#dddddd",
                                         "#fdd49e", "#c7c7c7"])),
        tooltip=["regime", "arch", "verdict", "acc_end", "bridge_end"])
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("label:N")).transform_calculate(
        label="format(datum.acc_end, '.2f') + ' / ' + format(datum.bridge_end, '.2f')")
    return (cells + text).properties(width=420, height=120,
                                     title=f"verdicts ({rule} rule): OOD acc / bridge at end")


def describe_verdicts(verdicts: pd.DataFrame, acc_threshold: float = ACC_AT,
                      bridge_threshold: float = BRIDGE_AT) -> str:
    """Markdown: what the detector found, phrased from the computed verdicts."""
    def runs_of(rule, verdict):
        d = verdicts[(verdicts["rule"] == rule) & (verdicts["verdict"] == verdict)]
        return [f"{r} / {a}" for r, a in zip(d["regime"], d["arch"])]

    n = verdicts[["regime", "arch"]].drop_duplicates().shape[0]
    if "acc_n" in verdicts:
        q = int(verdicts["acc_n"].min())
        lo, hi = wilson(0.5, q)
        lines_n = (f" Exact match is read on {q} OOD test queries per run: a 95 % interval "
                   f"of ±{(hi - lo) / 2:.2f} at 0.5 (columns acc_end_lo / acc_end_hi).")
    else:
        lines_n = ""
    lines = [f"Thresholds: OOD accuracy ≥ {acc_threshold:g} and bridge found ≥ "
             f"{bridge_threshold:g} at the last checkpoint; {n} runs. A run whose curve was "
             f"still rising below its threshold at the end (a gain of ≥ {RISING_BY:g} over "
             f"the last {RISING_OVER:.0%} of the run) is *{STILL_RISING}*: too short to say. "
             f"The strict rule reads the middle stage, fixed in advance; where it decodes b "
             f"for fewer than {BRIDGE_READABLE:.0%} of the trained two-hop facts the run "
             f"answers (column strict_check), its verdict is *{STRICT_BLIND}*."
             + lines_n]
    for rule in BRIDGE_RULES:
        fake = runs_of(rule, FAKE)
        counts = verdicts[verdicts["rule"] == rule]["verdict"].value_counts()
        tally = ", ".join(f"{counts.get(c, 0)} × *{c}*" for c in CLASSES)
        lines.append(f"- **{rule} rule**: {tally}.")
        rising = runs_of(rule, STILL_RISING)
        if fake:
            lines.append(f"  Fake grokking (accuracy without the bridge) appears in: "
                         f"{', '.join(fake)}.")
        elif rising:
            lines.append(f"  No run shows fake grokking under this rule, but {len(rising)} "
                         f"were still rising when they ended ({', '.join(rising)}): too short "
                         f"to tell.")
        else:
            lines.append("  No run shows fake grokking under this rule at this scale.")
    best = verdicts.sort_values("acc_end", ascending=False).iloc[0]
    if best["acc_end"] < acc_threshold:
        lines.append(f"\nNo run reaches the accuracy threshold: the best OOD accuracy at the "
                     f"end is {best['acc_end']:.2f} ({best['regime']} / {best['arch']}). At "
                     f"this scale and budget the comparison with the study is about the "
                     f"early part of its curves only, and the verdicts say so.")
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
            f"{worst['arch']}). For a *wrong* bridge, the b of another query, the lenient rule "
            f"still fires in {g['lenient, wrong b'].mean():.2f} of the queries on average "
            f"(up to {g['lenient, wrong b'].max():.2f}): that much of a lenient rate can "
            f"be reached without the bridge playing any role.")
