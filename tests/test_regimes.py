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


@pytest.mark.parametrize("ratio,k", [(1.0, 6), (0.5, 3), (0.25, 12)])
def test_counts_follow_ratio_and_k(ratio, k):
    cfg, atomic, ood = _graph()
    d = cfg.out_degree
    lookup = {(h, r): i for i, (h, r) in enumerate(zip(atomic["h"], atomic["r1"]))}
    for hop in (1, 2):
        spec = dict(hop1=(ratio, k)) if hop == 1 else dict(hop2=(ratio, k))
        extra, counts = injections(atomic, ood, d, 0, **spec)
        n = len(extra["h"])
        assert counts[f"hop{hop}_added"] == n and counts[f"hop{3 - hop}_added"] == 0
        first = np.array([lookup[(h, r)] for h, r in zip(extra["h"], extra["r1"])])
        second = np.array([lookup[(b, r)] for b, r in zip(extra["b"], extra["r2"])])
        assert np.array_equal(atomic["t"][second], extra["t"])     # valid compositions
        injected = first if hop == 1 else second
        partner = second if hop == 1 else first
        assert ood[injected].all() and not ood[partner].any()       # mixed: never OOD-OOD
        # exactly round(ratio x |OOD|) OOD facts are used (hop 2: those with a partner)
        used = len(set(injected.tolist()))
        assert used <= int(round(ratio * ood.sum()))
        if hop == 1:
            assert used == int(round(ratio * ood.sum()))
        # at most k distinct partners per injected fact, no duplicates
        per = np.bincount(injected, minlength=len(ood))
        assert per.max() <= k and len(_keys(extra)) == n


def test_full_ratio_uses_every_ood_fact_and_more_k_adds_more():
    cfg, atomic, ood = _graph()
    small, _ = injections(atomic, ood, cfg.out_degree, 0, hop1=(1.0, 2))
    big, _ = injections(atomic, ood, cfg.out_degree, 0, hop1=(1.0, 12))
    assert len(big["h"]) > len(small["h"])
    firsts = {(h, r) for h, r in zip(big["h"], big["r1"])}
    assert len(firsts) == ood.sum()


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
