import pandas as pd
import pytest

from grokbook.chapters.study import REGIME_NUMBERS
from grokbook.chapters.detect import (CIRCUIT_ONLY, CIRCUIT_WITH_ACCURACY, CLASSES, FAKE, NEITHER,
                                      STILL_RISING, chapter_configs, classify, detect,
                                      first_crossing, still_rising, study_at_clock)

STEPS = [0, 100, 200, 300, 400]


def _tables(acc, strict, lenient):
    accuracy = pd.DataFrame({"test_inferred_ood": acc}, index=pd.Index(STEPS, name="step"))
    rows = [dict(step=s, rule=r, rate=v, n=100, stage="x")
            for r, vals in (("strict", strict), ("lenient", lenient))
            for s, v in zip(STEPS, vals)]
    return accuracy, pd.DataFrame(rows)


@pytest.mark.parametrize("acc,strict,lenient,expected", [
    # thresholds 0.5 (ACC_AT, BRIDGE_AT): a curve "arrives" at its first crossing
    ([0, .1, .6, .95, .97], [0, .3, .7, .92, .95], [0, .5, .9, 1, 1],
     (CIRCUIT_WITH_ACCURACY, CIRCUIT_WITH_ACCURACY)),
    ([0, .2, .7, .96, .97], [0, .1, .3, .3, .31], [0, .2, .6, .8, .95], (FAKE, CIRCUIT_WITH_ACCURACY)),
    # the strict bridge never arrived but was still climbing at the end: too short to call
    ([0, .2, .7, .96, .97], [0, .1, .2, .3, .4], [0, .2, .6, .8, .95],
     (STILL_RISING, CIRCUIT_WITH_ACCURACY)),
    ([0, 0, .05, .1, .1], [0, .4, .9, .95, .99], [0, .8, 1, 1, 1], (CIRCUIT_ONLY, CIRCUIT_ONLY)),
    ([0, 0, 0, .01, .02], [0, 0, .1, .1, .1], [0, .1, .3, .4, .41], (NEITHER, NEITHER)),
    ([0, 0, 0, .2, .4], [0, 0, .1, .1, .1], [0, .1, .3, .4, .41], (STILL_RISING, STILL_RISING)),
    # an unstable accuracy that arrived and fell again still arrived (hop-1 only, study)
    ([0, .6, .7, .3, .2], [0, .6, .9, 1, 1], [0, .8, 1, 1, 1],
     (CIRCUIT_WITH_ACCURACY, CIRCUIT_WITH_ACCURACY)),
])
def test_detector_classifies_hand_built_tables(acc, strict, lenient, expected):
    accuracy, bridge = _tables(acc, strict, lenient)
    d = detect(accuracy, bridge).set_index("rule")
    assert (d.loc["strict", "verdict"], d.loc["lenient", "verdict"]) == expected
    assert d.loc["strict", "acc_end"] == acc[-1] and d.loc["strict", "acc_peak"] == max(acc)


def test_all_four_classes_and_thresholds_are_arguments():
    a, b = pd.Series([0.0, 0.95, 0.95]), pd.Series([0.0, 0.6, 0.6])   # settled at the end
    assert classify(a, b) == CIRCUIT_WITH_ACCURACY
    assert classify(a, b, bridge_threshold=0.9) == FAKE
    assert classify(a, b, acc_threshold=0.99) == CIRCUIT_ONLY
    assert classify(a, b, acc_threshold=0.99, bridge_threshold=0.9) == NEITHER
    assert len(set(CLASSES)) == 9
    # a run capped short of its clock: a curve that did not arrive is not evidence, flat or not
    from grokbook.chapters.detect import TOO_SHORT
    assert classify(a, b, bridge_threshold=0.9, complete=False) == TOO_SHORT
    assert classify(a, b, complete=False) == CIRCUIT_WITH_ACCURACY   # both arrived anyway
    assert still_rising(pd.Series([0.0, 0.1, 0.2, 0.3]), 0.9)          # +0.1 in the last quarter
    assert not still_rising(pd.Series([0.0, 0.3, 0.3, 0.31]), 0.9)     # flat
    assert not still_rising(pd.Series([0.0, 0.5, 0.8, 0.95]), 0.9)     # reached it


def test_crossings_are_first_steps():
    accuracy, bridge = _tables([0, .1, .6, .95, .97], [0, .3, .7, .92, .95], [0, 1, 1, 1, 1])
    d = detect(accuracy, bridge).set_index("rule")
    assert d.loc["strict", "acc_0.5"] == 200 and d.loc["strict", "acc_0.9"] == 300
    assert d.loc["strict", "bridge_0.5"] == 200 and d.loc["strict", "bridge_0.9"] == 300
    assert d.loc["lenient", "bridge_0.5"] == 100
    assert first_crossing(pd.Series([0.1, 0.2], index=[5, 10]), 0.5) is None


def test_crossing_steps_have_bootstrap_intervals_and_multiples_of_the_fitted_step():
    import numpy as np
    from grokbook.chapters.detect import crossing_table, crossing_with_interval
    steps = [0, 500, 1000, 1500, 2000]
    n = 400
    share = [0.0, 0.2, 0.45, 0.6, 0.9]             # the share of queries with a hit
    hits = np.array([np.arange(n) < round(s * n) for s in share])
    first, lo, hi = crossing_with_interval(hits, steps, 0.5)
    assert first == 1500 and lo <= 1500 <= hi and lo >= 1000     # 0.45 could pass by chance
    few = hits[:, ::40]                             # 10 queries: a wider interval
    _, lo10, hi10 = crossing_with_interval(few, steps, 0.5)
    assert hi10 - lo10 >= hi - lo
    assert crossing_with_interval(hits, steps, 0.95)[0] is None
    curves = {"steps": steps, "hits": {"exact": hits, "lenient": hits[:, ::-1] & False}}
    t = crossing_table(curves, fitted=500).set_index("key")
    assert t.loc["exact", "x_fit_0.5"] == 3.0 and t.loc["exact", "x_fit_0.9"] == 4.0
    assert t.loc["lenient", "x_fit_0.5"] == float("inf") and t.loc["exact", "end"] == 0.9
    assert t.loc["exact", "end_lo"] < 0.9 < t.loc["exact", "end_hi"]
    assert np.isnan(crossing_table(curves, fitted=None).loc[0, "x_fit_0.5"])  # no clock
    assert t.loc["exact", "x_fit_0.5_before"] == 2.0      # the crossing lies in (1000, 1500]
    assert t.loc["exact", "step_0.5"] == 1500 and t.loc["lenient", "step_0.5"] is None
    climbing = {"steps": steps, "hits": {"exact": np.array(
        [np.arange(n) < round(s * n) for s in (0.0, 0.1, 0.2, 0.3, 0.4)])}}
    assert crossing_table(climbing, fitted=500).loc[0, "rising"]          # below 0.5, climbing
    assert not crossing_table(curves, fitted=500).set_index("key").loc["exact", "rising"]
    empty = crossing_table({"steps": steps, "hits": {"exact": hits[:, :0]}}, fitted=500)
    assert empty.loc[0, "step_0.5"] is None and empty.loc[0, "n"] == 0


def test_the_rule_discriminates_on_the_studys_own_crossings():
    # the study's TRM curves seen up to 10x each run's train-accuracy-0.9 step: three classes
    v = study_at_clock().set_index("regime")["verdict"]
    assert v["hop2_only"] == FAKE and v["both_full"] == CIRCUIT_WITH_ACCURACY
    assert v["hop1_only"] == CIRCUIT_ONLY and v["natural"] == CIRCUIT_WITH_ACCURACY
    assert study_at_clock(clock=5).set_index("regime").loc["natural", "verdict"] == CIRCUIT_ONLY
    assert study_at_clock(acc_threshold=0.9, bridge_threshold=0.9).set_index(
        "regime").loc["hop2_only", "verdict"] == NEITHER          # 0.9 is beyond 10x for it
    with pytest.raises(ValueError, match="0.5 and 0.9"):
        study_at_clock(acc_threshold=0.7)
    assert pd.isna(REGIME_NUMBERS.set_index("regime").loc["hop2_only", "bridge_09"])


def test_chapter_configs_cover_regimes_architectures_and_seeds():
    from grokbook import preset
    from grokbook.chapters.paths import claim_seeds
    cfgs = chapter_configs("test")
    seeds = claim_seeds("test")
    # the study's four figure regimes: the subject on every claim seed, the others on one
    assert len(cfgs) == 4 * len(seeds) + 4 * 2
    first = seeds[0]
    assert cfgs[("natural", "looped", first)].model.n_loops == 2
    assert cfgs[("hop2_only", "trm", seeds[1])].data.regime == "hop2_only"
    assert len({c.hash() for c in cfgs.values()}) == len(cfgs)
    cpu = chapter_configs("cpu")                             # the subject in all four regimes
    assert {r for r, a, s in cpu if a == "trm"} == {"natural", "both_full", "hop1_only",
                                                    "hop2_only"}
    assert {s for r, a, s in cpu if a == "trm"} == set(claim_seeds("cpu"))
    assert {(r, a) for r, a, s in cpu if a != "trm"} == {("both_full", "looped"),
                                                         ("hop2_only", "looped")}
    # its natural runs are chapter 2's: the subject's own config and schedule
    for s in claim_seeds("cpu"):
        assert cpu[("natural", "trm", s)] == preset("cpu", seed=s)


def test_bridge_over_training_on_a_tiny_run(store):
    from grokbook.chapters.detect import bridge_over_training, chapter_tables
    from grokbook.core.store import train
    cfg = chapter_configs("test", ["hop2_only"], ["trm"])[("hop2_only", "trm", 0)]
    cfg = cfg.replace(**{"train.max_steps": 40, "train.checkpoint_every": 20})
    run = train(cfg, progress=False)
    t = bridge_over_training(run, max_queries=50)
    assert set(t["rule"]) == {"strict", "lenient", "lenient_control", "target_lenient"}
    assert sorted(set(t["step"])) == run.checkpoints
    assert t["rate"].between(0, 1).all()
    wide = t.pivot(index="step", columns="rule", values="rate")
    assert (wide["lenient"] >= wide["strict"]).all()
    curves, verdicts, crossings = chapter_tables({("hop2_only", "trm", 0): run},
                                                 max_queries=None)
    assert set(verdicts["verdict"]) <= set(CLASSES) and len(verdicts) == 2
    assert set(crossings["key"]) == {"exact", "target_lenient", "strict", "lenient",
                                     "lenient_control"}
    # the exact-match curve from the lens is the trainer's own accuracy at the checkpoints
    ex = curves[curves.curve == "OOD accuracy"].set_index("step")["value"]
    acc = run.accuracy()["test_inferred_ood"].reindex(ex.index)
    assert (ex - acc).abs().max() < 1e-6 and len(ex) == len(run.checkpoints)
    assert verdicts["target_lenient_end"].notna().all()
    assert "target_lenient" not in set(bridge_over_training(run, rule="strict",
                                                            max_queries=50)["rule"])
    # the strict stage is fixed in advance (the middle one), with its positive check
    from grokbook.analysis.circuit import middle_stage
    assert set(t["stage"]) == {middle_stage(run.load_model().stage_names)}
    rate, answered = t.attrs["strict_check"]["rate"], t.attrs["strict_check"]["answered"]
    assert answered >= 0 and (rate != rate or 0 <= rate <= 1)
    assert {"strict_check", "strict_check_n"} <= set(verdicts.columns)


def test_a_blind_strict_rule_gives_no_verdict():
    from grokbook.chapters.detect import STRICT_BLIND
    steps = [0, 100, 200]
    acc = pd.DataFrame({"test_inferred_ood": [0.0, 0.95, 0.95]}, index=steps)
    bridge = pd.DataFrame([dict(step=s, rule=r, rate=0.0) for s in steps
                           for r in ("strict", "lenient")])
    seen = detect(acc, bridge).set_index("rule")["verdict"]
    blind = detect(acc, bridge, strict_readable=False).set_index("rule")["verdict"]
    assert seen["strict"] == FAKE and blind["strict"] == STRICT_BLIND
    assert blind["lenient"] == seen["lenient"] == FAKE
    from grokbook.chapters.detect import LENIENT_BLIND, NOT_FITTED
    lenient_blind = detect(acc, bridge, lenient_readable=False).set_index("rule")["verdict"]
    assert lenient_blind["lenient"] == LENIENT_BLIND and lenient_blind["strict"] == FAKE
    assert set(detect(acc, bridge, fitted=False)["verdict"]) == {NOT_FITTED}


def test_lenient_target_rate_counts_a_query_once_at_any_site():
    from grokbook.analysis.lens import lenient_rate
    rows = []
    ranks = {0: [1, 5, 7], 1: [3, 2, 1], 2: [4, 4, 9], 3: [2, 1, 1]}   # query -> rank per site
    for q, rs in ranks.items():
        for site, r in enumerate(rs):
            rows += [dict(target="t", query=q, stage=site, position=2, rank=r),
                     dict(target="b", query=q, stage=site, position=1, rank=1)]
    lens = pd.DataFrame(rows)
    assert lenient_rate(lens, "t") == 0.75          # queries 0, 1, 3; not 2
    assert lenient_rate(lens, "b") == 1.0
    assert lenient_rate(lens.iloc[:0], "t") != lenient_rate(lens.iloc[:0], "t")   # NaN


def test_side_by_side_sets_the_same_quantity_beside_the_studys():
    from grokbook.chapters.detect import side_by_side
    accuracy, bridge = _tables([0, .1, .2, .3, .3], [0, .1, .2, .2, .2], [0, .5, .9, 1, 1])
    target = pd.DataFrame([dict(step=s, rule="target_lenient", rate=v, n=100, stage="x")
                           for s, v in zip(STEPS, [0, .3, .6, .7, .7])])
    d = detect(accuracy, pd.concat([bridge, target], ignore_index=True))
    assert list(d["target_lenient_end"]) == [0.7, 0.7]
    d.insert(0, "arch", "trm")
    d.insert(0, "regime", "hop2_only")
    d["clock"] = 10.0
    crossings = pd.DataFrame([dict(regime="hop2_only", arch="trm", key=k, **{"x_fit_0.5": x})
                              for k, x in (("target_lenient", 4.0), ("exact", float("inf")),
                                           ("lenient", 2.0))])
    row = side_by_side(d, crossings).iloc[0]
    assert row["ours: OOD target, lenient (end)"] == 0.7 and row["ours: OOD exact match (end)"] == 0.3
    assert row["ours: OOD target x fit"] == 4.0 and row["ours: bridge (lenient) x fit"] == 2.0
    assert row["study: OOD target (end, 1.5M)"] == 0.97 and row["study: OOD target x fit"] == 6.61
    assert row["study: verdict at 10x"] == FAKE


def test_wilson_interval():
    from grokbook.analysis.definitions import wilson
    lo, hi = wilson(0.5, 400)
    assert abs((hi - lo) / 2 - 0.049) < 0.001          # +-0.05 needs about 400 queries
    assert wilson(0.0, 100)[0] == 0.0 and 0 < wilson(0.0, 100)[1] < 0.05
    assert wilson(1.0, 100)[1] > 1 - 1e-12
    assert all(x != x for x in wilson(0.5, 0))


def test_cpu_chapter_reads_enough_ood_queries_for_a_tight_interval():
    from grokbook.analysis.definitions import wilson
    from grokbook.core.data import build_dataset
    cfgs = chapter_configs("cpu", ["natural"], ["trm"])
    # one run reads its graph's ~100 OOD queries; the verdict reads the claim seeds together
    n = sum(len(build_dataset(c.data, c.seed).probes["test_inferred_ood"]["h"])
            for c in cfgs.values())
    lo, hi = wilson(0.5, n)
    assert len(cfgs) >= 3 and (hi - lo) / 2 <= 0.06, n
