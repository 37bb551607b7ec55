import pandas as pd

import grokbook.chapters.sweeps
import grokbook.core.store
from conftest import small
from grokbook.chapters.sweeps import LocalExecutor, by_value, compute_table, default_grid, sweep


def test_sweep_rerun_hits_the_store(store, monkeypatch):
    cfg = small()
    first = sweep(cfg, progress=False, seed=[0, 1])
    assert list(first["status"]) == ["ok", "ok"] and list(first["seed"]) == [0, 1]
    assert {"run", "reason", "memorized_step", "grokked_step", "grok_flops"} <= set(first)

    def no_training(*a, **k):
        raise AssertionError("retrained")
    monkeypatch.setattr(grokbook.core.store, "_train_members", no_training)
    again = sweep(cfg, progress=False, seed=[0, 1])
    pd.testing.assert_frame_equal(first, again)


def test_impossible_phi_is_skipped_with_reason(store):
    t = sweep(small(), progress=False, **{"data.phi": [3.0, 50.0]})
    assert list(t["status"]) == ["ok", "skipped"]
    assert "max_phi" in t.loc[1, "reason"] and t.loc[1, "data.phi"] == 50.0
    bad = sweep(small(), progress=False, data__n_layer=[1], **{"model.n_head": [3]})
    assert bad.loc[0, "status"] == "skipped" and "model.n_head" in bad.loc[0, "reason"]
    assert list(by_value(t)["data.phi"]) == [3.0]
    assert list(compute_table(t).columns)[:3] == ["data.phi", "seed", "phase"]


def test_a_failing_point_does_not_stop_the_others(store, monkeypatch):
    real = grokbook.chapters.sweeps.train

    def flaky(cfg, *a, **k):
        if cfg.seed == 1:
            raise RuntimeError("disk on fire")
        return real(cfg, *a, **k)
    monkeypatch.setattr(grokbook.chapters.sweeps, "train", flaky)
    t = sweep(small(), progress=False, seed=[0, 1, 2])
    assert list(t["status"]) == ["ok", "failed", "ok"]
    assert "disk on fire" in t.loc[1, "reason"]

    class Broken(LocalExecutor):  # an executor that loses a point reports it as failed
        def map(self, fn, items):
            out = super().map(fn, items)
            out[0] = ("error", "worker lost")
            return out
    t2 = sweep(small(), executor=Broken(), progress=False, seed=[0, 2])
    assert list(t2["status"]) == ["failed", "ok"] and t2.loc[0, "reason"] == "worker lost"


def test_default_grid_depends_on_the_preset():
    test, cpu = default_grid("test"), default_grid("cpu")
    assert len(test["phis"]) * len(test["seeds"]) <= len(cpu["phis"]) * len(cpu["seeds"])
    # enough for Wang's rules to come out either way (grokbook.analysis.wang)
    assert len(cpu["phis"]) >= 4 and len(cpu["seeds"]) >= 2 and len(cpu["sizes"]) >= 3
    assert default_grid("cpu", seeds=[0])["seeds"] == [0]


def test_chapter_3_sweeps_the_subject_and_reads_its_own_runs_at_its_point():
    from grokbook import preset
    from grokbook.chapters import paths
    from grokbook.chapters.sweeps import (chapter_base, default_grid, phi_points,
                                          point_config, size_points)
    for name in ("cpu", "test"):
        subject = preset(name)
        base = chapter_base(name)
        assert base.model == subject.model and base.data == subject.data
        g = default_grid(name)
        assert g["seeds"] == paths.claim_seeds(name)
        assert size_points(g)["data.phi"] == [subject.data.phi]
        # the subject's own point is chapter 2's run; any other ends once it groks
        own = point_config(name, {"data.phi": subject.data.phi, "seed": g["seeds"][1]})
        assert own == subject.replace(seed=g["seeds"][1])
        other = point_config(name, {"data.phi": g["phis"][0], "seed": g["seeds"][0]})
        assert other.train.stop_at == 0.9 and other.model == subject.model
    cpu = default_grid("cpu")
    assert len(cpu["phis"]) >= 4 and len(cpu["seeds"]) >= 3 and len(cpu["sizes"]) >= 3
    assert max(cpu["sizes"]) >= 4 * min(cpu["sizes"])
    assert preset("cpu").data.phi in cpu["phis"]


def test_describe_sweep_says_how_clean_the_delay_was():
    from grokbook.chapters.sweeps import describe_sweep
    t = pd.DataFrame({"data.phi": [5.4, 5.4, 7.2, 7.2], "seed": [0, 1, 0, 1],
                      "status": "ok", "grokked_step": [4000, None, 1500, 1400],
                      "budget": 6000, "heldout_at_memorized": [0.1, 0.27, 0.54, None]})
    text = describe_sweep(t, "data.phi")
    assert "0.10-0.54; in 2 of 3 runs above 0.2" in text
    clean = describe_sweep(t.assign(heldout_at_memorized=0.1), "data.phi")
    assert "in 0 of 4 runs above 0.2" in clean
