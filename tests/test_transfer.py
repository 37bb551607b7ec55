import numpy as np
import pytest

from conftest import small
from grokbook import ConfigError, load_run, preset, train
from grokbook.core.data import build_dataset
from grokbook.chapters.transfer import (finetune_config, floor_config, pick_checkpoints,
                                        transfer_table)
from grokbook.core.newknowledge import (CONTROL_TEST, CONTROL_TRAINED,
                                        CONTROL_UNSEEN, HOP2_CONTROL, PROBE_KINDS,
                                        build_transfer, dataset_for)

# a graph like the cpu preset's, with free (head, relation) pairs
CPU_LIKE = {"data.n_entities": 150, "data.n_relations": 15, "data.out_degree": 10,
            "data.phi": 5.0}


def _lookup(*tables):
    facts = {}
    for t in tables:
        for h, r, tail in zip(t["h"], t["r1"], t["t"]):
            assert (h, r) not in facts          # one answer per (head, relation)
            facts[(int(h), int(r))] = int(tail)
    return facts


def test_new_facts_never_collide_with_old_pairs():
    cfg = preset("test", finetune="new_knowledge")
    ds = build_transfer(cfg)
    old = build_dataset(cfg.data, cfg.seed).atomic
    old_pairs = set(zip(old["h"].tolist(), old["r1"].tolist()))
    new_pairs = list(zip(ds.new["h"].tolist(), ds.new["r1"].tolist()))
    assert len(set(new_pairs)) == len(new_pairs) > 0
    assert not old_pairs & set(new_pairs)
    # same vocabulary; the fine-tuning set is replay + new atomic facts, no new two-hop fact
    assert len(ds.vocab) == len(build_dataset(cfg.data, cfg.seed).vocab)
    new_set = set(new_pairs)
    two = ds.train["r2"] >= 0
    assert not any((h, r) in new_set or (b, r2) in new_set for h, r, b, r2 in zip(
        ds.train["h"][two], ds.train["r1"][two], ds.train["b"][two], ds.train["r2"][two]))
    assert ds.counts["new_facts"] == len(new_pairs) and ds.counts["replay_total"] > 0


def test_compositions_give_the_stated_answers_and_chains_exist():
    cfg = preset("test", finetune="new_knowledge")
    ds = build_transfer(cfg)
    old = build_dataset(cfg.data, cfg.seed).atomic
    facts = _lookup(old, ds.new)
    new = set(zip(ds.new["h"].tolist(), ds.new["r1"].tolist()))
    replayed = {(h, r) for h, r, r2 in zip(ds.replay["h"].tolist(), ds.replay["r1"].tolist(),
                                           ds.replay["r2"].tolist()) if r2 < 0}
    # (hop 1, hop 2): "new", "replayed" (an old fact replayed in fine-tuning) or "old" (not)
    kinds = {"new_new": ("new", "new"), "new_hop1_replayed_hop2": ("new", "replayed"),
             "replayed_hop1_new_hop2": ("replayed", "new"), "new_hop1_old_hop2": ("new", "old"),
             "old_hop1_new_hop2": ("old", "new")}

    def kind(pair):
        return "new" if pair in new else "replayed" if pair in replayed else "old"
    for name, (hop1, hop2) in kinds.items():
        p = ds.probes[name]
        assert len(p["h"]) > 0, name
        for h, r1, r2, b, t in zip(*(p[c].tolist() for c in ("h", "r1", "r2", "b", "t"))):
            assert facts[(h, r1)] == b and facts[(b, r2)] == t
            assert (kind((h, r1)), kind((b, r2))) == (hop1, hop2), name
    # the chains: fact 2k ends at the head of fact 2k+1; all new facts, as in the study
    n = ds.counts["chain_facts"]
    assert n == 2 * (ds.counts["new_facts"] // 2)
    assert n > 0 and np.array_equal(ds.new["t"][0:n:2], ds.new["h"][1:n:2])


def test_every_probe_kind_has_hundreds_of_queries_at_cpu_scale():
    ds = build_transfer(preset("cpu", finetune="new_knowledge", **CPU_LIKE))
    for name in PROBE_KINDS:
        assert len(ds.probes[name]["h"]) >= 200, name
    t = build_transfer(preset("test", finetune="new_knowledge"))
    for name in PROBE_KINDS:
        assert len(t.probes[name]["h"]) >= 100, name


def test_transfer_set_is_seeded():
    cfg = preset("test", finetune="new_knowledge")
    assert build_transfer(cfg).digest() == build_transfer(cfg).digest()
    assert build_transfer(cfg).digest() != build_transfer(cfg.replace(seed=1)).digest()


@pytest.mark.parametrize("overrides, field", [
    ({"data.out_degree": 10}, "data.out_degree"),            # == n_relations: no free pair
    ({"finetune": "nonsense"}, "finetune"),
    ({"transfer.chain_fraction": 1.5}, "transfer.chain_fraction"),
    ({"transfer.new_facts": 100000}, "transfer.new_facts"),
    ({"transfer.control_per_fact": 0}, "transfer.control_per_fact"),
])
def test_bad_transfer_config_names_the_field(overrides, field):
    base = {"finetune": "new_knowledge"}
    base.update(overrides)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        preset("test", **base)


def test_finetuned_run_records_its_parent_and_reloads(store):
    parent = train(small(), progress=False)
    cfg = finetune_config(parent, parent.checkpoints[-1], lr=1e-3, max_steps=24)
    assert cfg.parent == f"{parent.id}@{parent.checkpoints[-1]}"
    run = train(cfg, progress=False)
    again = load_run(run.id, store)
    assert again.config.parent == cfg.parent and again.config.finetune == "new_knowledge"
    assert again.id != parent.id and again.steps == 24
    assert again.dataset.digest() == dataset_for(cfg).digest()
    # step 0 of the fine-tuning run is the parent's checkpoint
    w0, wp = again.load_model(0).state_dict(), parent.load_model().state_dict()
    assert all(np.allclose(w0[k].numpy(), wp[k].numpy()) for k in wp)
    assert {"new_atomic", "new_new", "old_inferred"} <= set(again.accuracy().columns)
    table = transfer_table(again, steps=[0, 24])
    assert set(table.columns) >= {"step", "probe", "accuracy", "bridge_found_strict",
                                  "bridge_found_lenient"}
    two_hop = table[table.probe == "new_new"]
    assert two_hop.bridge_found_lenient.between(0, 1).all()
    assert (two_hop.bridge_found_lenient >= two_hop.bridge_found_strict).all()
    assert set(pick_checkpoints(parent).role) <= {"grokked", "memorized"}
    with pytest.raises(ConfigError, match="parent"):
        finetune_config(parent, 7)              # not a stored checkpoint


def test_a_fine_tune_runs_its_steps_whatever_the_parent_s_stop_rules(store):
    parent = train(small().replace(**{"train.stop_after_grokked": 2.0,
                                      "train.stop_at": 0.05}), progress=False)
    cfg = finetune_config(parent, parent.checkpoints[-1], lr=1e-3, max_steps=24)
    t = cfg.train
    assert (t.stop_at, t.stop_after_grokked, t.stop_after_fitted) == (0.0, 0.0, 0.0)
    assert train(cfg, progress=False).steps == 24


def test_positive_control_trains_hop2_for_half_the_new_facts_and_tests_the_rest():
    cfg = preset("cpu", finetune="new_knowledge")
    main = build_transfer(cfg)
    ctrl = build_transfer(cfg.replace(finetune=HOP2_CONTROL))
    new = list(zip(main.new["h"].tolist(), main.new["r1"].tolist()))

    def ends(t):        # the new fact each composition ends with (its hop 2)
        return list(zip(t["b"].tolist(), t["r2"].tolist()))

    def rows(t):
        return set(zip(*(t[c].tolist() for c in ("h", "r1", "r2"))))
    p = ctrl.probes
    trained, test, unseen = ends(p[CONTROL_TRAINED]), ends(p[CONTROL_TEST]), ends(p[CONTROL_UNSEEN])
    assert len(trained) >= 100 and len(test) >= 100 and len(unseen) >= 200
    assert set(trained) | set(test) | set(unseen) <= set(new)
    # the test asks other compositions of the facts trained as hop 2; "unseen" the other half
    assert set(test) <= set(trained) and not set(unseen) & set(trained)
    assert not rows(p[CONTROL_TEST]) & rows(p[CONTROL_TRAINED])
    assert max(trained.count(f) for f in set(trained)) == cfg.transfer.control_per_fact == 1
    # a few compositions per fact: more trained, fewer left to test; a field of the run id
    three = build_transfer(cfg.replace(finetune=HOP2_CONTROL, **{"transfer.control_per_fact": 3}))
    assert three.counts["control_trained"] > ctrl.counts["control_trained"]
    assert three.counts["hop2_control_test_all"] < ctrl.counts["hop2_control_test_all"]
    c1 = cfg.replace(finetune=HOP2_CONTROL, parent="0" * 12 + "@0")
    assert c1.hash() != c1.replace(**{"transfer.control_per_fact": 3}).hash()
    # the control adds exactly those compositions to the training set; the main set trains
    # none, and both sets hold the same queries in every probe they share
    assert ctrl.counts["train"] == main.counts["train"] + len(trained)
    assert CONTROL_TRAINED not in main.probes and main.counts["control_trained"] == 0
    for name, table in main.probes.items():
        assert all(np.array_equal(table[c], ctrl.probes[name][c]) for c in table), name
    two = ctrl.train["r2"] >= 0
    trained_rows = set(zip(*(ctrl.train[c][two].tolist() for c in ("h", "r1", "r2"))))
    assert rows(p[CONTROL_TRAINED]) <= trained_rows
    assert not (rows(p[CONTROL_TEST]) | rows(p[CONTROL_UNSEEN])) & trained_rows


def test_floor_model_starts_the_parents_transfer_set(store):
    base = small()
    floor_cfg = floor_config(base)
    assert floor_cfg.data.phi == 0 and floor_cfg.train.max_steps < base.train.max_steps
    floor = train(floor_cfg, progress=False)
    assert floor.dataset.counts["train_inferred"] == 0       # never saw a composition
    cfg = finetune_config(floor, floor.checkpoints[-1], lr=1e-3, max_steps=8,
                          **{"data.phi": base.data.phi})
    assert dataset_for(cfg).digest() == dataset_for(
        base.replace(finetune="new_knowledge", parent="x@0")).digest()
    run = train(cfg, progress=False)                         # phi alone may differ
    assert run.steps == 8
    other = finetune_config(floor, floor.checkpoints[-1], max_steps=8,
                            **{"data.phi": base.data.phi, "data.ood_ratio": 0.2})
    with pytest.raises(ConfigError, match="parent"):         # another graph may not
        train(other, progress=False)


def test_strict_rule_is_read_only_where_it_sees_the_bridge_of_old_compositions():
    import pandas as pd
    from grokbook.chapters.transfer import claim3_answer, strict_rule_check

    def table(start_rate):
        rows = [dict(step=s, probe=p, n=600, accuracy=a, bridge_found_strict=b,
                     bridge_found_lenient=0.9, bridge_found_when_wrong=b)
                for s in (0, 100) for p, a, b in (("old_inferred", 1.0, start_rate),
                                                   ("new_new", 0.01, 0.7),
                                                   ("new_atomic", 1.0, np.nan))]
        t = pd.DataFrame(rows)
        t.attrs["strict_stage"] = "mid"      # what transfer_table's check found at the start
        t.attrs["strict_check"] = {"stage": "mid", "rate": start_rate, "answered": 600,
                                   "readable": start_rate >= 0.5}
        return t
    blind, sees = strict_rule_check(table(0.0)), strict_rule_check(table(0.8))
    assert not blind["readable"] and sees["readable"] and sees["stage"] == "mid"
    assert "**not measured**" in claim3_answer({"grokked": table(0.0)})
    assert "**not measured**" not in claim3_answer({"grokked": table(0.8)})


def test_chapter_configs_fine_tune_every_start_on_one_transfer_set(store, monkeypatch):
    from grokbook.chapters import transfer
    parent = train(small(), progress=False)
    floor = train(floor_config(small()), progress=False)
    dense = train(small("dense"), progress=False)
    configs = transfer.chapter_configs(parent, floor, "test", dense)
    assert {"grokked", "floor", "hop2_control"} <= set(configs)
    assert "dense_grokked" not in configs          # the short dense run never grokked
    assert "never reached" in transfer.describe_beside(dense)
    digests = {r: dataset_for(c.replace(finetune="new_knowledge")).digest()
               for r, c in configs.items() if r != "replay"}
    assert len(set(digests.values())) == 1             # the same new facts for every start
    from grokbook.core.config import transfer_sizes   # the variant replays twice the old items
    more = configs["replay"]
    assert more.transfer.replay == 2 * transfer_sizes(configs["grokked"])["replay"]
    assert more.replace(**{"transfer.replay": 0}) == configs["grokked"]
    assert dataset_for(more).counts["new_facts"] == dataset_for(configs["grokked"]).counts[
        "new_facts"]
    assert configs["floor"].parent.startswith(floor.id)
    assert configs["hop2_control"].finetune == HOP2_CONTROL
    # a dense run with a grokked checkpoint is fine-tuned beside the subject, from it
    monkeypatch.setattr(transfer, "grokked_checkpoint", lambda run: run.checkpoints[-1])
    configs = transfer.chapter_configs(parent, floor, "test", dense)
    assert configs["dense_grokked"].parent == f"{dense.id}@{dense.checkpoints[-1]}"
    assert configs["dense_grokked"].model == dense.config.model
