"""Chapter 2: the book's subject on fresh seeds, beside a dense transformer.

The subject (``core.config.SUBJECT``, the study's TRM, at the recipe the declared search of
``chapters.subject`` chose) is trained on the confirmation seeds -- each a new graph and a
new initialisation, none of them used by the search -- and the pass rule of
``chapters.subject`` (memorized with held-out ID <= ``wang.BEFORE_AT``, grokked at least
``subject.MIN_DELAY`` times later, within the budget) is read on each. The dense
transformer on the first claim seed's graph and recipe is the declared contrast.
"""
from __future__ import annotations

import pandas as pd

from ..analysis import exposure
from ..analysis.definitions import GROKKED_AT, GROKKED_SPLIT, OOD_SPLIT, heldout_at, run_summary
from ..analysis.definitions import still_rising
from ..analysis.wang import BEFORE_AT, seed_class
from ..core.config import preset
from ..core.plan import Plan, Planned, plan_runs
from ..core.store import load_run
from . import settings
from . import subject as S

CONTRAST = "02/contrast: dense transformer"


def first_seed(preset_name: str) -> int:
    """The first claim seed (``subject.claim_seeds``): the run the chapters show one seed
    of, and the graph of the dense contrast."""
    return S.claim_seeds(preset_name)[0]


def first_run(preset_name: str, runs: list):
    """Of the subject's ``runs`` (one per seed), the first claim seed's."""
    return next(r for r in runs if r.config.seed == first_seed(preset_name))


def subject_name(seed: int) -> str:
    return f"02/subject/seed {seed}"


def plan(preset_name: str):
    """Chapter 2's runs: the subject (the preset's recipe) on its seeds (the confirmation
    round the book keeps, ``settings.subject_seeds``) and the dense transformer on the
    first claim seed. The other confirmation rounds are not the book's runs: the chapter reads them
    from the committed confirmation record (``grokbook subject`` trains them)."""
    base = preset(preset_name)
    p = Plan()
    for s in settings.subject_seeds(preset_name):
        p.add(Planned(subject_name(s), "02", "subject", base.replace(seed=s),
                      labels={"seed": s}))
    p.add(Planned(CONTRAST, "02", "contrast",
                  preset(preset_name, arch="dense", seed=first_seed(preset_name))))
    return p


def chapter_runs(preset_name: str, store=None) -> dict:
    """{"subject": the first claim seed's run, "contrast": the dense run, "seeds": [the subject on
    each of its seeds]} from the store (trained if missing)."""
    p = plan(preset_name)
    runs = plan_runs(p, store=store)
    seeds = [runs[e.name] for e in p if e.role == "subject"]
    return {"subject": first_run(preset_name, seeds), "contrast": runs[CONTRAST],
            "seeds": seeds}


def seed_runs(preset_name: str, store=None, progress: bool = False) -> list:
    """The subject (the preset's recipe) on its seeds."""
    return chapter_runs(preset_name, store)["seeds"]


def delay_summary(run) -> dict:
    """The subject's wait, measured: memorized and grokked steps, held-out ID accuracy at
    the memorized step and at its half-way crossing."""
    s = run_summary(run)
    acc = run.accuracy()
    return {"memorized_step": s["memorized_step"], "grokked_step": s["grokked_step"],
            "heldout_at_memorized": s["heldout_at_memorized"],
            "heldout_at_end": heldout_at(acc, int(acc.index[-1])),
            "wait_ratio": (round(s["grokked_step"] / s["memorized_step"], 2)
                           if s["grokked_step"] and s["memorized_step"] else None)}


def describe_delay(subject: dict, contrast: dict) -> str:
    """Plain words for ``delay_summary`` of the subject and the dense contrast, true
    whatever the numbers are."""
    def one(name, d):
        if d["memorized_step"] is None:
            return f"The {name} did not memorize its training facts within the budget."
        text = (f"The {name} memorized its training facts at step {d['memorized_step']:,}, "
                f"when held-out ID accuracy was {d['heldout_at_memorized']:.2f}")
        if d["grokked_step"] is None:
            return text + (f"; held-out ID accuracy never reached {GROKKED_AT} within the "
                           f"budget (it ended at {d['heldout_at_end']:.2f}).")
        return text + (f"; it reached {GROKKED_AT} at step {d['grokked_step']:,}, "
                       f"{d['wait_ratio']}x later.")
    return one("subject (TRM)", subject) + " " + one("dense transformer", contrast)


# ---------------------------------------------------------------- the seeds
SEED_LABEL = "seed"


def seed_table(preset_name: str, store=None, progress: bool = False) -> pd.DataFrame:
    """The subject on every confirmation seed: the pass rule's milestones and outcome, what
    the seed did in Wang's terms (``wang.seed_class``), held-out ID at the end, the run."""
    rows = []
    for run in seed_runs(preset_name, store):
        r = S.seed_rows([run])[0]
        acc = run.accuracy()
        rising = still_rising(acc[GROKKED_SPLIT], GROKKED_AT)
        rows.append({SEED_LABEL: r["seed"], "memorized_step": r["memorized_step"],
                     "heldout_at_memorized": r["heldout_at_memorized"],
                     "grokked_step": r["grokked_step"], "wait_ratio": r["wait_ratio"],
                     "passed": r["passed"], "outcome": r["outcome"],
                     "wang": seed_class(r["memorized_step"], r["grokked_step"],
                                        r["heldout_at_memorized"], rising),
                     "heldout_at_end": r["heldout_at_end"],
                     "final_ood": round(float(acc[OOD_SPLIT].iloc[-1]), 4),
                     "steps": r["steps"], "budget": run.config.train.max_steps,
                     "run": run.id})
    return pd.DataFrame(rows)


def seeds_chart(table: pd.DataFrame):
    """Per seed: the memorized and grokked steps (left) and held-out ID accuracy at the
    memorized step against the rule's 0.2 (right); colour: passed the rule or not."""
    import altair as alt
    d = table.assign(seed=table[SEED_LABEL].astype(str),
                     result=table["passed"].map({True: "passed", False: "failed"}))
    steps = d.melt(id_vars=["seed", "result"], value_vars=["memorized_step", "grokked_step"],
                   var_name="milestone", value_name="step").dropna(subset=["step"])
    left = alt.Chart(steps).mark_point(filled=True, size=70).encode(
        x=alt.X("seed:N"), y=alt.Y("step:Q", title="step"),
        shape=alt.Shape("milestone:N"), color=alt.Color("result:N", scale=alt.Scale(
            domain=["passed", "failed"], range=["#2a9d8f", "#e76f51"])),
        tooltip=["seed:N", "milestone:N", "step:Q", "result:N"]).properties(
        width=300, height=200, title="memorized and grokked step per seed")
    right = alt.Chart(d).mark_bar().encode(
        x=alt.X("seed:N"), y=alt.Y("heldout_at_memorized:Q", title="held-out ID at memorized",
                                   scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("result:N"),
        tooltip=["seed:N", "heldout_at_memorized:Q", "outcome:N"])
    rule = alt.Chart(pd.DataFrame({"y": [BEFORE_AT]})).mark_rule(
        strokeDash=[4, 3], color="black").encode(y="y:Q")
    return alt.hconcat(left, (right + rule).properties(
        width=220, height=200, title=f"a clean wait: at most {BEFORE_AT} (dashed)"))


def describe_seeds(table: pd.DataFrame) -> str:
    """How many fresh seeds pass the subject's rule, and the spread, computed."""
    n, k = len(table), int(table["passed"].sum())
    if not n:
        return "No confirmation run is in the store."
    text = (f"On {n} fresh seeds the subject passes the rule in {k} "
            f"(the confirmation asks for {S.CONFIRM_SHARE:.0%}, so "
            f"{'it is confirmed' if k >= S.CONFIRM_SHARE * n else 'it is not confirmed'}).")
    g = table["grokked_step"].dropna()
    m = table["memorized_step"].dropna()
    if len(g):
        text += (f" They memorized at steps {int(m.min()):,}-{int(m.max()):,} and grokked at "
                 f"{int(g.min()):,}-{int(g.max()):,} (median {int(g.median()):,}); held-out ID "
                 f"at memorization {table['heldout_at_memorized'].min():.2f}-"
                 f"{table['heldout_at_memorized'].max():.2f}.")
    failed = table[~table["passed"]]
    if len(failed):
        text += " Failed: " + "; ".join(f"seed {r[SEED_LABEL]} ({r['outcome']})"
                                        for _, r in failed.iterrows()) + "."
    return text


# ---------------------------------------------------------------- where the seeds differ


def exposure_table(seeds: pd.DataFrame, store=None) -> pd.DataFrame:
    """``analysis.exposure.accuracy_by_exposure`` of each run of ``seed_table`` at its last
    checkpoint, one long table (column ``run``: the seed table's label)."""
    parts = []
    for _, row in seeds.iterrows():
        run = load_run(row["run"], store)
        t = exposure.accuracy_by_exposure(run.load_model(), run.dataset)
        parts.append(t.assign(run=f"seed {row[SEED_LABEL]}"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["split", "exposure", "queries", "accuracy", "lo", "hi", "run"])


def exposure_wide(table: pd.DataFrame) -> pd.DataFrame:
    """``exposure_table`` for reading: one row per (split, exposure) with its query count,
    one column per run with accuracy [95 % interval]."""
    t = table.assign(cell=[f"{a:.2f} [{lo:.2f}, {hi:.2f}]"
                           for a, lo, hi in zip(table.accuracy, table.lo, table.hi)])
    order = list(dict.fromkeys(t["exposure"]))
    wide = t.pivot_table(index=["split", "exposure", "queries"], columns="run", values="cell",
                         aggfunc="first", sort=False)
    wide = wide[list(dict.fromkeys(t["run"]))].reset_index()
    wide["_o"] = wide["exposure"].map(order.index)
    wide = wide.sort_values(["split", "_o"]).drop(columns="_o").reset_index(drop=True)
    wide.columns.name = None
    return wide


def describe_exposure(table: pd.DataFrame) -> str:
    """The exposure table in words, computed from it."""
    iid = table[table["split"] == GROKKED_SPLIT]
    runs = list(dict.fromkeys(iid["run"]))
    if not runs:
        return "No run of the seed table has held-out ID queries to read."
    rises = {r: exposure.exposure_rises(table[table["run"] == r]) for r in runs}
    measured = [r for r in runs if rises[r] is not None]
    lo_, hi_ = exposure.RISES_FROM, exposure.RISES_TO

    def at(r, e, split=GROKKED_SPLIT):
        x = table[(table["run"] == r) & (table["split"] == split) & (table["exposure"] == e)]
        return f"{x['accuracy'].iloc[0]:.2f}" if len(x) else "-"

    text = (f"Held-out ID accuracy is higher on queries whose second-hop fact was seen "
            f"{hi_} times as a second hop than on those seen {lo_} time, beyond both 95 % "
            f"intervals, in {sum(rises[r] for r in measured)} of {len(measured)} runs")
    if measured:
        text += (f" (accuracy at {hi_} / at {lo_}: "
                 + "; ".join(f"{r}: {at(r, hi_)} / {at(r, lo_)}" for r in measured) + ")")
    text += "."
    if len(measured) < len(runs):
        text += (f" Not measured in {len(runs) - len(measured)} run(s), whose held-out "
                 f"queries fill only one of the two buckets.")
    ood = table[table["split"] == OOD_SPLIT]
    if len(ood):
        text += (f" OOD queries, exposure {', '.join(sorted(set(ood['exposure'])))}, are "
                 f"answered {ood['accuracy'].min():.2f}-{ood['accuracy'].max():.2f} of the time.")
    return text
