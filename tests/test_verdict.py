"""Chapter 7's verdict rules on hand-built numbers, and the scorecard following them."""

import pandas as pd

from grokbook.core.newknowledge import CONTROL_TEST
from grokbook.chapters import verdict as v
from grokbook.chapters.detect import (CIRCUIT_ONLY, CIRCUIT_WITH_ACCURACY, FAKE, LENIENT_BLIND,
                                      NEITHER, NOT_FITTED, STILL_RISING, TOO_SHORT)


def _sweep(key, steps):
    return pd.DataFrame([{key: k, "seed": i, "grokked_step": g, "budget": 10_000}
                         for k, gs in steps.items() for i, g in enumerate(gs)])


def _cuts(speedups=(3.6, 1.1), paths=("same", "different"), measured=3,
          transfer=("-", "-")):
    """``shortcuts.wait_cut_table``: Muon (fast) and Grokfast (slow) by default."""
    from grokbook.chapters import shortcuts as S
    rows = []
    for label, sp, path, tr in zip(("Muon", "Grokfast"), speedups, paths, transfer):
        rows.append(dict(shortcut=label, setting="-", seeds=3, grokked=3, clean_wait=3,
                         measured=measured, speedup=sp, speedup_lo=sp * 0.8,
                         speedup_hi=sp * 1.2, seconds_speedup=sp, flops_speedup=sp,
                         path=path, path_why=f"{path} on 3 seeds", same_share=1.0,
                         transfer=tr, cuts=measured >= 3 and sp >= S.CUT_AT and sp * 0.8 > 1))
    return pd.DataFrame(rows)


def _seed(seed, cls="grokked after a wait", ood=0.02):
    return dict(seed=seed, memorized_step=900, grokked_step=4000, heldout_at_memorized=0.1,
                **{"class": cls}, final_ood=ood)


def _claim1(seed, outcome="same", measured=True):
    return dict(measured=measured, outcome=outcome, reason="made-up", arch="trm",
                runs=[f"r{seed}"], seed=seed,
                before={"step": 2000, "test_inferred_iid": 0.15},
                after={"step": 12000, "test_inferred_iid": 0.95},
                later={"step": 24000, "test_inferred_iid": 0.99},
                d_before_after={"d": 0.05, "lo": 0.03, "hi": 0.07, "cells": 40,
                                "queries": 500},
                seed_scale={"d": 0.06, "lo": 0.04, "hi": 0.08, "p95": 0.08},
                drift={"d": 0.02, "lo": 0.01, "hi": 0.03, "p95": 0.03},
                scale={"p95": 0.08, "from": "seed"},
                lens_before_after={"max_gap": 0.1, "at": "z_H.cycle1", "before": 0.5,
                                   "after": 0.6},
                negatives={"random": {"d": 0.5, "lo": 0.45, "hi": 0.55}})


GOOD3 = {"new_atomic": 1.0, "new_hop1_replayed_hop2": 0.9, "replayed_hop1_new_hop2": 0.05,
         "new_new": 0.02}


def _numbers(**changes):
    n = {
        "wang_grokking": dict(per_seed=[_seed(s) for s in range(8)], runs=["a"]),
        "wang_ood": dict(per_seed=[_seed(s) for s in range(8)], runs=["a"]),
        "wang_phi": dict(table=_sweep("data.phi", {3.6: [9000, 8800, 9100],
                                                   5.4: [7000, 6800, 6900],
                                                   7.2: [5000, 5200, 5100],
                                                   9.0: [3000, 3100, 3050]}),
                         runs=["b", "c"]),
        "wang_size": dict(table=_sweep("data.n_entities", {50: [5000, 5020, 4990],
                                                           100: [5010, 4980, 5000],
                                                           200: [4995, 5005, 5010]}),
                          runs=["d"]),
        "claim1_same_path": dict(per_seed=[_claim1(s) for s in (1, 2, 3)]),
        "claim2_fake_grokking": dict(
            verdicts=pd.DataFrame(
                [dict(regime="hop2_only", arch="trm", seed=s, rule="lenient", verdict=FAKE,
                      acc_peak=0.95, bridge_end=0.4) for s in (1, 2, 3)]
                + [dict(regime="both_full", arch="trm", seed=s, rule="lenient",
                        verdict=CIRCUIT_WITH_ACCURACY, acc_peak=0.9, bridge_end=0.95)
                   for s in (1, 2, 3)]),
            per_run=[dict(regime="hop2_only", arch="trm", seed=1, fitted=1000, clock=10.0,
                          acc_peak=0.95, verdict={"lenient": FAKE},
                          curves={"exact": {"x_fit_0.5": 6.5}, "lenient": {"x_fit_0.5": float("inf")}})],
            runs=["d"]),
        "claim3_transfer": dict(starts=_starts(GOOD3), per_seed={s: _starts(GOOD3)
                                                                 for s in (1, 2, 3)},
                                runs=["e"]),
        "wait_cut": dict(table=_cuts(), natural_grokked=3, not_tuned=[], runs=["a", "f"]),
    }
    for key, upd in changes.items():
        n[key] = {**n[key], **upd} if key in n and upd is not None else upd
    return n


def _transfer(finals: dict, n: int = 600, rising=()) -> dict:
    """A made-up ``verdict.transfer_summary``: final (= best) accuracy per probe."""
    from grokbook.analysis.definitions import wilson
    return {k: {"final": a, "best": a, "n": n, "lo": wilson(a, n)[0], "hi": wilson(a, n)[1],
                "steps": 5000, "rising": k in rising} for k, a in finals.items()}


def _starts(grokked: dict, n: int = 600, rising=(), floor_hop1: float = 0.02,
            control: float = 0.6, grokked_control: float = 0.03) -> dict:
    """Made-up {role: transfer_summary}: the grokked start, the floor model's new-as-hop-1
    and the positive control on its held-out hop-2 queries (None: that run is missing)."""
    out = {"grokked": _transfer({**grokked, CONTROL_TEST: grokked_control}, n, rising)}
    if floor_hop1 is not None:
        out["floor"] = _transfer({"new_atomic": 1.0, "new_hop1_replayed_hop2": floor_hop1,
                                  "replayed_hop1_new_hop2": 0.0}, n)
    if control is not None:
        out["hop2_control"] = _transfer({"new_atomic": 1.0, CONTROL_TEST: control}, 300)
    return out


def test_path_fake_and_transfer_rules():
    assert v.verdict_paths("same") == v.REPLICATES
    assert v.verdict_paths("different") == v.NOT_REPLICATED
    assert v.verdict_paths("undetermined") == v.NOT_MEASURED
    # claim 2 reads the lenient rule over the subject's seeds (the strict rule misses more)
    fake = v.verdict_fake

    def runs(hop2, control_peak=0.8, elsewhere=NEITHER, arch="trm"):
        rows = [dict(regime="both_full", arch=arch, seed=s, rule="lenient", verdict=NEITHER,
                     acc_peak=control_peak) for s in (1, 2, 3)]
        rows += [dict(regime="natural", arch=arch, seed=s, rule="lenient", verdict=elsewhere,
                      acc_peak=0.1) for s in (1, 2, 3)]
        rows += [dict(regime="hop2_only", arch=arch, seed=s, rule="lenient", verdict=c,
                      acc_peak=0.1) for s, c in enumerate(hop2, 1)]
        rows += [dict(regime="hop2_only", arch=arch, seed=1, rule="strict", verdict=FAKE,
                      acc_peak=0.1)]
        return pd.DataFrame(rows)
    assert fake(runs([FAKE, FAKE, NEITHER]))[0] == v.REPLICATES
    assert fake(runs([FAKE, NEITHER, NEITHER]))[0] == v.PARTLY
    assert fake(runs([NEITHER] * 3, elsewhere=FAKE))[0] == v.PARTLY   # only another regime
    assert fake(runs([NEITHER, CIRCUIT_ONLY, NEITHER]))[0] == v.NOT_REPLICATED
    assert fake(runs([FAKE] * 3, control_peak=0.1))[0] == v.NOT_MEASURED  # control failed
    assert fake(runs([FAKE] * 3, arch="looped"))[0] == v.NOT_MEASURED   # not the subject's
    for unknown in (STILL_RISING, TOO_SHORT, LENIENT_BLIND, NOT_FITTED):  # cut off, no clock
        verdict, why = fake(runs([FAKE, FAKE, unknown]))
        assert verdict == v.NOT_MEASURED and "decided" in why           # 2 of 3 seeds decided
    assert fake(runs([]))[0] == v.NOT_MEASURED
    assert fake(runs([FAKE]).iloc[:0])[0] == v.NOT_MEASURED
    good = {"new_atomic": 1.0, "new_hop1_replayed_hop2": 0.9, "replayed_hop1_new_hop2": 0.05,
            "new_new": 0.0, "new_hop1_old_hop2": 0.1, "old_hop1_new_hop2": 0.4}
    T, vt = _starts, v.verdict_transfer
    assert vt(T(good)) == v.REPLICATES                  # non-replayed probes do not enter
    assert vt(T({**good, "replayed_hop1_new_hop2": 0.4})) == v.PARTLY
    # the measured cpu asymmetry (0.21 vs 0.01 on 600 queries): significant, so partly,
    # though hop 1 beats hop 2 by less than 0.2 -- and not on 20 queries
    small = {**good, "new_hop1_replayed_hop2": 0.21, "replayed_hop1_new_hop2": 0.01,
             "new_new": 0.02}
    assert vt(T(small)) == v.PARTLY
    assert vt(T(small, n=20)) == v.NOT_REPLICATED
    assert vt(T({**good, "new_hop1_replayed_hop2": 0.06})) == v.NOT_REPLICATED
    assert vt(T(small, rising={"new_hop1_replayed_hop2"})) == v.NOT_MEASURED
    old_run = {k: x for k, x in good.items() if "replayed" not in k}
    assert vt(T(old_run)) == v.NOT_MEASURED
    assert vt(T({**good, "new_atomic": 0.5})) == v.NOT_MEASURED
    # the controls: a floor model that composes new-as-hop-1 as well, a positive control
    # that does not compose hop 2 either (or does, but no better than the grokked start),
    # or a missing control turn "replicates" and "partly" into "not measured"
    assert vt(T(good, floor_hop1=0.88)) == v.NOT_MEASURED
    assert vt(T(small, floor_hop1=0.2)) == v.NOT_MEASURED
    assert vt(T(small, floor_hop1=0.1)) == v.PARTLY
    assert vt(T(good, control=0.1)) == v.NOT_MEASURED
    assert vt(T(good, control=0.3, grokked_control=0.3)) == v.NOT_MEASURED
    assert vt(T(good, floor_hop1=None)) == v.NOT_MEASURED
    assert vt(T(good, control=None)) == v.NOT_MEASURED
    # ... but cannot rescue a claim without asymmetry
    assert vt(T({**good, "new_hop1_replayed_hop2": 0.06}, control=None)) == v.NOT_REPLICATED
    verdict_, why = v.transfer_verdict_why(T(good, control=0.1))
    assert "positive control" in why


def test_transfer_summary_reads_final_best_interval_and_rising():
    steps = [0, 1000, 2000, 3000, 4000]
    t = pd.DataFrame(
        [{"step": s, "probe": "new_new", "n": 600, "accuracy": a}
         for s, a in zip(steps, [0.0, 0.02, 0.03, 0.02, 0.02])]
        + [{"step": s, "probe": "new_hop1_replayed_hop2", "n": 600, "accuracy": a}
           for s, a in zip(steps, [0.0, 0.05, 0.1, 0.2, 0.3])])
    out = v.transfer_summary(t)
    assert out["new_new"]["rising"] is False and out["new_new"]["best"] == 0.03
    h1 = out["new_hop1_replayed_hop2"]
    assert h1["rising"] is True and h1["final"] == 0.3 and h1["steps"] == 4000
    assert h1["lo"] < 0.3 < h1["hi"] and h1["n"] == 600
    # through the rule: the same end values read "partly" once the hop-1 curve is flat,
    # "not measured" while it still rises (the rising check discriminates)
    def table(hop1):
        rows = [("new_atomic", [0.5, 1.0, 1.0, 1.0, 1.0]), ("new_hop1_replayed_hop2", hop1),
                ("replayed_hop1_new_hop2", [0.0, 0.01, 0.01, 0.01, 0.01]),
                ("new_new", [0.0, 0.02, 0.02, 0.02, 0.02])]
        return pd.DataFrame([{"step": s, "probe": p, "n": 600, "accuracy": a}
                             for p, accs in rows for s, a in zip(steps, accs)])
    controls = {k: x for k, x in _starts({}).items() if k != "grokked"}
    grok_control = _starts({})["grokked"]
    def starts(hop1):
        return {"grokked": {**v.transfer_summary(table(hop1)), **grok_control}, **controls}
    assert v.verdict_transfer(starts([0.0, 0.1, 0.15, 0.2, 0.3])) == v.NOT_MEASURED
    assert v.verdict_transfer(starts([0.0, 0.28, 0.3, 0.3, 0.3])) == v.PARTLY


def test_wait_cut_rule_reaches_every_class():
    def verdict(table, grokked=3):
        return v.verdict_wait_cut(table, grokked)[0]
    assert verdict(_cuts()) == v.REPLICATES                      # 3.6x, same circuit
    assert verdict(_cuts(paths=("different", "same"))) == v.PARTLY
    assert verdict(_cuts(paths=("mixed", "same"))) == v.PARTLY
    assert verdict(_cuts(paths=("not measured", "same"))) == v.NOT_MEASURED
    assert verdict(_cuts(speedups=(1.5, 1.1))) == v.NOT_REPLICATED     # nothing halves it
    assert verdict(_cuts(speedups=(1.5, 1.1), measured=2)) == v.NOT_MEASURED
    assert verdict(_cuts(), grokked=2) == v.NOT_MEASURED               # too few natural runs
    assert verdict(_cuts().iloc[:0]) == v.NOT_MEASURED                 # nothing tuned
    # a fast shortcut on the same circuit whose new facts transfer differently: partly
    assert verdict(_cuts(transfer=("different", "-"))) == v.PARTLY
    assert verdict(_cuts(transfer=("no difference", "-"))) == v.REPLICATES
    words = v.verdicts(_numbers())["wait_cut"]["this_book"]
    assert words.startswith("Muon cut the wait and reach the naturally grokked circuit.")
    assert "Muon (-): 3.60x fewer steps [2.88x, 4.32x] over 3 seeds" in words


def test_scorecard_follows_the_numbers():
    card = v.scorecard(_numbers())
    assert list(card["verdict"]) == [v.REPLICATES] * 8
    assert set(card["source"]) == {"Wang et al. 2024 (arXiv 2405.15071)",
                                   "He et al. 2026 (arXiv 2601.09049)",
                                   "this book (beyond the study)"}
    assert all(card["rule"].str.len() > 40) and all(card["runs"].map(len) > 0)
    # change one underlying metric: only that claim's verdict moves
    no_wait = [_seed(s, "grokked without a wait") for s in range(8)]
    changed = v.scorecard(_numbers(wang_grokking=dict(per_seed=no_wait)))
    diff = card["verdict"] != changed["verdict"]
    assert list(card.loc[diff, "claim"]) == ["wang_grokking"]
    assert changed.set_index("claim").loc["wang_grokking", "verdict"] == v.NOT_REPLICATED
    undetermined = v.scorecard(_numbers(claim1_same_path=dict(per_seed=[
        _claim1(s, "undetermined", measured=False) for s in (1, 2, 3)])))
    assert undetermined.set_index("claim").loc["claim1_same_path", "verdict"] == v.NOT_MEASURED
    # slow is not never: censored seeds leave Wang's grokking not measured
    slow = [_seed(s, "still rising at its budget") for s in range(5)] + [_seed(9)] * 3
    row = v.scorecard(_numbers(wang_grokking=dict(per_seed=slow))).set_index("claim")
    assert row.loc["wang_grokking", "verdict"] == v.NOT_MEASURED
    assert "censored" in row.loc["wang_grokking", "this book"]
    few = v.scorecard(_numbers(wang_grokking=dict(per_seed=[_seed(1), _seed(2)])))
    assert few.set_index("claim").loc["wang_grokking", "verdict"] == v.NOT_MEASURED
    # OOD: the interval over seeds decides
    high = v.scorecard(_numbers(wang_ood=dict(per_seed=[_seed(s, ood=0.6) for s in range(4)])))
    assert high.set_index("claim").loc["wang_ood", "verdict"] == v.NOT_REPLICATED
    # claim 1 over seeds: one different seed among same ones is partly
    mixed = [_claim1(1), _claim1(2, "different"), _claim1(3)]
    row = v.verdicts(_numbers(claim1_same_path=dict(per_seed=mixed)))["claim1_same_path"]
    assert row["verdict"] == v.PARTLY and "seed 2" in row["this_book"]
    assert row["evidence"]["different"] == [2] and set(row["runs"]) == {"r1", "r2", "r3"}


def test_what_the_wait_bought_for_new_facts_is_read_from_the_starts():
    starts = _starts({"new_atomic": 1.0, "new_hop1_replayed_hop2": 0.24,
                      "replayed_hop1_new_hop2": 0.01, "new_new": 0.01})
    starts["memorized"] = _transfer({"new_hop1_replayed_hop2": 0.11,
                                     "replayed_hop1_new_hop2": 0.015})
    starts["floor"] = _transfer({"new_hop1_replayed_hop2": 0.02, "replayed_hop1_new_hop2": 0.0})
    words = v.transfer_bought(starts)
    assert "hop 1 at 0.24 [" in words and "the memorized start 0.11" in words
    assert "the floor start 0.02" in words and "hop 2 at 0.01" in words
    assert v.transfer_bought({"grokked": starts["grokked"]}) == ""     # nothing beside it


def test_claim2_line_gives_the_control_and_the_hop2_crossings():
    control = dict(regime="both_full", arch="trm", seed=41, fitted=1200, clock=10.0,
                   acc_peak=0.81, verdict={"lenient": CIRCUIT_WITH_ACCURACY}, curves={})
    hop2 = dict(regime="hop2_only", arch="trm", seed=41, fitted=1000, clock=10.2,
                acc_peak=0.3, verdict={"lenient": NEITHER},
                curves={"exact": {"x_fit_0.5": "> 10.2"}, "lenient": {"x_fit_0.5": 3.5}})
    never = dict(hop2, arch="looped", fitted=None, verdict={"lenient": NOT_FITTED})
    line = v.verdicts(_numbers(claim2_fake_grokking=dict(per_run=[control, hop2, never])))[
        "claim2_fake_grokking"]["this_book"]
    assert "control trm seed 41 both-full OOD peak 0.81" in line
    assert ("hop-2-only trm seed 41 (ran 10.2x fit): OOD 0.5 at > 10.2x, lenient bridge 0.5 "
            "at 3.5x -> neither") in line
    assert "hop-2-only looped seed 41 (never fitted)" in line




def test_claim_3_over_seeds_reads_the_asymmetry_beyond_the_floor():
    def seeds(hop1, floor_hop1=0.02, hop2=0.05, n=3, control=0.6, rising=()):
        return {s: _starts({**GOOD3, "new_hop1_replayed_hop2": h, "replayed_hop1_new_hop2": hop2},
                           floor_hop1=f, control=control, rising=rising)
                for s, h, f in zip(range(n), hop1, floor_hop1 if isinstance(floor_hop1, list)
                                   else [floor_hop1] * n)}
    c3 = v.claim3_over_seeds
    assert c3(seeds([0.9, 0.85, 0.95]))[0] == v.REPLICATES
    assert c3(seeds([0.9, 0.85, 0.95], hop2=0.4))[0] == v.PARTLY        # hop 2 not low
    # the floor model shows the same asymmetry: it is not bought by grokking
    v_, why, num = c3(seeds([0.3, 0.2, 0.25], floor_hop1=[0.5, 0.4, 0.45]))
    assert v_ == v.NOT_REPLICATED and num["delta_hi"] <= 0
    assert c3(seeds([0.3, 0.05, 0.2], floor_hop1=[0.05, 0.3, 0.2]))[0] == v.NOT_MEASURED
    assert c3(seeds([0.9, 0.9], n=2))[0] == v.NOT_MEASURED               # too few seeds
    assert c3(seeds([0.9, 0.9, 0.9], control=0.0))[0] == v.NOT_MEASURED  # control failed
    rising = seeds([0.4, 0.4, 0.4], rising=("new_hop1_replayed_hop2",))
    assert c3(rising)[0] == v.NOT_MEASURED                                # cut off
    words = v.forgetting_words([{"start": "grokked", "probe": "test_inferred_iid",
                                 "before": 0.95, "after": 0.4, "seed": 1},
                                {"start": "replay", "probe": "test_inferred_iid",
                                 "before": 0.95, "after": 0.7, "seed": 1}])
    assert "0.95 -> 0.40 (grokked)" in words and "0.70 (replay, more replay)" in words


def test_every_verdict_carries_the_subjects_pass_rate():
    n = {**_numbers(), "subject": {"passed": 5, "of": 8, "seeds_passed": [41, 42, 44, 45, 47]}}
    out = v.verdicts(n)
    assert all(x["subject"].startswith("5 of 8 fresh seeds pass") for x in out.values())
    card = v.scorecard(n)
    items = dict(v.scorecard_cards(card)[0][1])
    assert items["on a subject where"].startswith("5 of 8")
    assert v.scorecard(_numbers())["subject"].eq("not measured").all()
