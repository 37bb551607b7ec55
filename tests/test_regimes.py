import numpy as np
import pytest

from grokbook import preset
from grokbook.core.data import build_dataset, make_graph, split_ood
from grokbook.core.regimes import REGIMES, injections


def _graph():
    cfg = preset("test", **{"data.n_entities": 80, "data.out_degree": 8,
                            "data.ood_ratio": 0.1}).data
    atomic = make_graph(cfg, 0)
    return cfg, atomic, split_ood(cfg, 0, len(atomic["h"]))


def _keys(t):
    return set(zip(t["h"].tolist(), t["r1"].tolist(), t["r2"].tolist()))


def _pools_by_brute_force(atomic, ood):
    """OOD facts that are the first / second hop of some OOD two-hop query, fact by fact."""
    facts = list(zip(atomic["h"].tolist(), atomic["r1"].tolist(), atomic["t"].tolist()))
    leaving = {}
    for i, (h, _, _) in enumerate(facts):
        leaving.setdefault(h, []).append(i)
    first, second = set(), set()
    for i, (_, _, b) in enumerate(facts):
        for j in leaving.get(b, []):
            if ood[i] and ood[j]:
                first.add(i)
                second.add(j)
    return first, second


def _id_partners(atomic, ood, i, hop):
    """ID facts leaving fact i's tail (hop 1) or entering its head (hop 2)."""
    if hop == 1:
        idx = np.flatnonzero(atomic["h"] == atomic["t"][i])
    else:
        idx = np.flatnonzero(atomic["t"] == atomic["h"][i])
    return idx[~ood[idx]]


@pytest.mark.parametrize("ratio,k", [(1.0, 6), (0.5, 3), (0.25, 12)])
def test_the_studys_rule_pool_ratio_and_partners(ratio, k):
    cfg, atomic, ood = _graph()
    d = cfg.out_degree
    lookup = {(h, r): i for i, (h, r) in enumerate(zip(atomic["h"], atomic["r1"]))}
    pools = _pools_by_brute_force(atomic, ood)
    for hop in (1, 2):
        spec = dict(hop1=(ratio, k)) if hop == 1 else dict(hop2=(ratio, k))
        extra, counts = injections(atomic, ood, d, 0, **spec)
        n = len(extra["h"])
        assert counts[f"hop{hop}_added"] == n and counts[f"hop{3 - hop}_added"] == 0
        pool = pools[hop - 1]
        assert counts[f"hop{hop}_pool"] == len(pool) < ood.sum()   # not every OOD fact
        first = np.array([lookup[(h, r)] for h, r in zip(extra["h"], extra["r1"])])
        second = np.array([lookup[(b, r)] for b, r in zip(extra["b"], extra["r2"])])
        assert np.array_equal(atomic["t"][second], extra["t"])     # valid compositions
        injected = first if hop == 1 else second
        partner = second if hop == 1 else first
        assert ood[injected].all() and not ood[partner].any()       # mixed: never OOD-OOD
        used = set(injected.tolist())
        assert used <= pool                                         # only pool facts
        assert len(used) == int(round(ratio * len(pool)))           # all have ID partners here
        per = np.bincount(injected, minlength=len(ood))
        for i in used:                                              # min(k, available)
            assert per[i] == min(k, len(_id_partners(atomic, ood, i, hop)))
        assert len(_keys(extra)) == n                               # no duplicates


def test_paper_scale_counts_match_the_studys():
    """The study's rule on our seed-0 paper-scale graph: both-full is deterministic (whole
    pools, min(18, available) partners each); both-half picks round(pool / 2) facts with
    9 partners each (a picked fact with fewer ID partners adds fewer)."""
    from grokbook.chapters.study import REGIME_ADDED
    cfg = preset("paper").data
    atomic = make_graph(cfg, 0)
    ood = split_ood(cfg, 0, len(atomic["h"]))
    _, full = injections(atomic, ood, cfg.out_degree, 0, (1.0, 18), (1.0, 18))
    _, half = injections(atomic, ood, cfg.out_degree, 0, (0.5, 9), (0.5, 9))
    assert (full["hop1_pool"], full["hop2_pool"]) == (1279, 1252)
    assert (full["hop1_added"], full["hop2_added"]) == (22_833, 20_943)
    assert half["hop1_added"] == round(0.5 * 1279) * 9 == 5_760
    assert round(0.5 * 1252) * 9 - 9 <= half["hop2_added"] <= round(0.5 * 1252) * 9
    for regime, counts in (("both_full", full), ("both_half", half)):
        for ours, theirs in zip((counts["hop1_added"], counts["hop2_added"]),
                                REGIME_ADDED[regime]):
            assert abs(ours - theirs) / theirs < 0.03, (regime, ours, theirs)


def test_only_non_natural_run_ids_name_the_injection_rule():
    from grokbook.core import regimes
    natural, full = preset("cpu"), preset("cpu", **{"data.regime": "both_full"})
    before = (natural.hash(), full.hash())
    rule = regimes.RULE
    try:
        regimes.RULE = "another rule"
        import grokbook.core.config as config
        config.INJECTION_RULE = "another rule"
        assert natural.hash() == before[0] and full.hash() != before[1]
    finally:
        regimes.RULE = config.INJECTION_RULE = rule


def test_regimes_are_seeded_and_never_add_test_queries():
    for regime in REGIMES:
        cfg = preset("test", **{"data.regime": regime})
        a, b = build_dataset(cfg.data, 0), build_dataset(cfg.data, 0)
        assert a.digest() == b.digest()
        train = _keys(a.train)
        for probe in ("test_inferred_ood", "test_inferred_iid"):
            assert not (train & _keys(a.probes[probe])), (regime, probe)
        c = a.counts
        assert c["augmented"] == c["hop1_added"] + c["hop2_added"]
        r1, k1, r2, k2 = REGIMES[regime]
        assert (c["hop1_added"] > 0) == (r1 > 0) and (c["hop2_added"] > 0) == (r2 > 0)
    full = build_dataset(preset("test", **{"data.regime": "both_full"}).data, 0).counts
    half = build_dataset(preset("test", **{"data.regime": "both_half"}).data, 0).counts
    assert half["hop1_added"] < full["hop1_added"] and half["hop2_added"] < full["hop2_added"]
    other = build_dataset(preset("test", **{"data.regime": "both_full"}).data, 1)
    assert other.digest() != build_dataset(preset("test", **{"data.regime": "both_full"}).data,
                                           0).digest()
