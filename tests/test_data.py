import json

import numpy as np
import pytest

from grokbook import ConfigError, preset
from grokbook.core.data import build_dataset, compose, export_json, graph_stats, load_json, n_rows


def test_paper_counts_match_the_published_dataset():
    cfg = preset("paper")
    ds = build_dataset(cfg.data, cfg.seed)
    c = ds.summary()
    assert (c["atomic"], c["id_atomic"], c["ood_atomic"]) == (40000, 38000, 2000)
    assert c["train_inferred"] == 684000
    assert 18.0 < c["max_phi"] < 19.0
    assert all(0 < n <= 3000 for n in c["probes"].values())
    assert c["vocab_size"] == 2000 + 200 + 2


def test_same_config_same_bytes_and_seed_changes_them():
    cfg = preset("test")
    a = build_dataset(cfg.data, 0).digest()
    assert a == build_dataset(cfg.data, 0).digest()
    assert a != build_dataset(cfg.data, 1).digest()


def test_graph_structure_and_split_rules():
    cfg = preset("test")
    ds = build_dataset(cfg.data, 3)
    E, d = cfg.data.n_entities, cfg.data.out_degree
    a = ds.atomic
    # each head has out_degree distinct relations
    for h in range(E):
        rels = a["r1"][a["h"] == h]
        assert len(rels) == d and len(set(rels)) == d
    lookup = {(h, r): t for h, r, t in zip(a["h"], a["r1"], a["t"])}
    ood = {(h, r) for h, r, o in zip(a["h"], a["r1"], ds.atomic_ood) if o}
    for name, tab in ds.probes.items():
        if "inferred" not in name:
            continue
        for h, r1, r2, b, t in zip(*(tab[c] for c in ("h", "r1", "r2", "b", "t"))):
            assert lookup[(h, r1)] == b and lookup[(b, r2)] == t
            hops_ood = ((h, r1) in ood, (b, r2) in ood)
            assert hops_ood == ((True, True) if name == "test_inferred_ood" else (False, False))
    # held-out ID queries never appear in training
    train = set(zip(ds.train["h"], ds.train["r1"], ds.train["r2"]))
    test = set(zip(*(ds.probes["test_inferred_iid"][c] for c in ("h", "r1", "r2"))))
    assert not (train & test)


def test_phi_is_nested_and_graph_independent_of_phi():
    lo, hi = preset("test", **{"data.phi": 2.0}), preset("test", **{"data.phi": 4.0})
    a, b = build_dataset(lo.data), build_dataset(hi.data)
    assert all(np.array_equal(a.atomic[c], b.atomic[c]) for c in a.atomic)
    sa = set(zip(a.train["h"], a.train["r1"], a.train["r2"]))
    sb = set(zip(b.train["h"], b.train["r1"], b.train["r2"]))
    assert sa < sb
    assert n_rows(b.train) - n_rows(b.atomic) == round(4.0 * b.counts["id_atomic"])


def test_compose_counts():
    cfg = preset("test")
    ds = build_dataset(cfg.data)
    table, _, _ = compose(ds.atomic, cfg.data.out_degree)
    assert n_rows(table) == n_rows(ds.atomic) * cfg.data.out_degree


@pytest.mark.parametrize("field,value", [
    ("data.phi", 99.0), ("data.out_degree", 11), ("data.n_entities", 0),
    ("data.n_relations", -3), ("data.ood_ratio", 1.0), ("data.ood_ratio", 0.0),
    ("data.iid_test_ratio", 1.5), ("data.probe_cap", 0), ("model.n_head", 3),
    ("train.lr", 0.0), ("data.regime", "both_quarter"), ("train.device", "tpu")])
def test_bad_values_name_their_field(field, value):
    with pytest.raises(ConfigError) as e:
        cfg = preset("test", **{field: value})
        build_dataset(cfg.data)
    assert field in str(e.value) and "allowed" in str(e.value)


def test_impossible_phi_reports_max_phi():
    with pytest.raises(ConfigError, match=r"data.phi.*max_phi = 5\.\d+"):
        build_dataset(preset("test", **{"data.phi": 6.0}).data)


def test_unknown_preset_and_field_list_the_valid_ones():
    with pytest.raises(ConfigError, match="allowed: test, cpu, gpu, paper"):
        preset("laptop")
    with pytest.raises(ConfigError, match="data.phi") as e:
        preset("test", **{"data.phii": 3})
    assert "data.phii" in str(e.value)
    with pytest.raises(ConfigError, match="train.max_steps: cannot read 'many' as int"):
        preset("test", **{"train.max_steps": "many"})


def test_graph_stats_agree_with_built_dataset():
    cfg = preset("test")
    ds = build_dataset(cfg.data)
    d = cfg.data
    s = graph_stats(d.n_entities, d.n_relations, d.out_degree, d.ood_ratio, d.iid_test_ratio, d.phi)
    assert s["atomic"] == ds.counts["atomic"] and s["id_atomic"] == ds.counts["id_atomic"]
    assert s["train_inferred"] == ds.counts["train_inferred"]
    assert abs(s["max_phi"] - ds.counts["max_phi"]) / ds.counts["max_phi"] < 0.35


def test_json_round_trip(tmp_path):
    cfg = preset("test")
    ds = build_dataset(cfg.data)
    export_json(ds, tmp_path)
    rec = json.loads((tmp_path / "train.json").read_text())[0]
    assert set(rec) == {"input_text", "target_text", "type"}
    assert rec["target_text"].startswith(rec["input_text"]) and rec["target_text"].endswith("</a>")
    back = load_json(tmp_path)
    for c in ("h", "r1", "r2", "t"):
        assert np.array_equal(back.train[c], ds.train[c])
        for name in ds.probes:
            assert np.array_equal(back.probes[name][c], ds.probes[name][c])
    assert np.array_equal(back.atomic_ood, ds.atomic_ood)
    assert np.array_equal(back.probes["test_inferred_iid"]["b"], ds.probes["test_inferred_iid"]["b"])


def test_malformed_record_names_file_and_index(tmp_path):
    ds = build_dataset(preset("test").data)
    export_json(ds, tmp_path)
    recs = json.loads((tmp_path / "train.json").read_text())
    recs[7]["target_text"] = "<e_1><r_2>oops"
    (tmp_path / "train.json").write_text(json.dumps(recs))
    with pytest.raises(ValueError, match=r"train\.json: record 7 is malformed"):
        load_json(tmp_path)
