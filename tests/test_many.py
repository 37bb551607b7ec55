"""Runs trained together: each member is bitwise the run trained alone (one thread)."""
import json

import pandas as pd

import pytest
import torch

from conftest import small
from grokbook.core.store import train, train_many
from grokbook.core.train import group_key


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.delenv("GROKBOOK_WORKERS", raising=False)  # groups stay whole here
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _members():
    # same shape and schedule; other seed, learning rate, weight decay, data (phi) and regime
    return [small(seed=0), small(seed=1, **{"train.lr": 1e-3, "train.weight_decay": 0.3}),
            small(seed=2, **{"data.phi": 3.0, "data.regime": "both_full",
                             "train.grad_clip": 0.0})]


def _same_run(a, b):
    assert a.id == b.id
    assert (a.path / "metrics.json").read_bytes() == (b.path / "metrics.json").read_bytes()
    assert a.checkpoints == b.checkpoints
    for s in a.checkpoints:
        wa = torch.load(a.path / "ckpt" / f"{s:08d}.pt", weights_only=True)
        wb = torch.load(b.path / "ckpt" / f"{s:08d}.pt", weights_only=True)
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), f"{a.id} step {s} differs"


def test_members_trained_together_equal_solo_runs(tmp_path):
    cfgs = _members()
    assert len({group_key(c) for c in cfgs}) == 1
    together = train_many(cfgs, store=tmp_path / "together", progress=False, group_size=16)
    alone = [train(c, store=tmp_path / "alone", progress=False) for c in cfgs]
    for a, b in zip(together, alone):
        _same_run(a, b)
    assert json.loads((together[0].path / "info.json").read_text())["group"]["size"] == 3
    assert len({r.id for r in together}) == 3
    # the loaded weights answer as the stacked network did
    assert together[1].load_model(20).state_dict().keys() == alone[1].load_model(20).state_dict().keys()


def test_an_interrupted_group_resumes_to_the_same_numbers(tmp_path):
    cfgs = _members()
    with pytest.raises(KeyboardInterrupt):
        train_many(cfgs, store=tmp_path / "a", progress=False, group_size=16, stop_after=30)
    resumed = train_many(cfgs, store=tmp_path / "a", progress=False, group_size=16)
    straight = train_many(cfgs, store=tmp_path / "b", progress=False, group_size=16)
    for a, b in zip(resumed, straight):
        _same_run(a, b)


def test_a_stored_member_is_not_trained_again(tmp_path):
    cfgs = _members()
    first = train(cfgs[1], store=tmp_path, progress=False)
    info = (first.path / "info.json").read_bytes()
    runs = train_many(cfgs, store=tmp_path, progress=False, group_size=16)
    assert (runs[1].path / "info.json").read_bytes() == info
    assert json.loads((runs[0].path / "info.json").read_text())["group"]["size"] == 2


def test_a_member_that_stops_early_is_its_solo_run(tmp_path):
    early = small("dense", seed=3, **{"train.stop_at": 0.01, "train.lr": 1e-2})
    cfgs = [small("dense", seed=0), early]
    together = train_many(cfgs, store=tmp_path / "t", progress=False, group_size=16)
    alone = train(early, store=tmp_path / "s", progress=False)
    _same_run(together[1], alone)
    assert together[1].steps < together[0].steps


def test_a_diverging_member_is_dropped_and_the_others_stored(tmp_path):
    from grokbook.core.store import list_runs
    from grokbook.core.train import TrainingDiverged
    bad = small(seed=4, **{"train.lr": 1e30, "train.grad_clip": 0.0, "train.warmup_steps": 0})
    good = small(seed=0)
    with pytest.raises(TrainingDiverged):
        train_many([good, bad], store=tmp_path, progress=False, group_size=16)
    assert list_runs(tmp_path) == [train(good, store=tmp_path, progress=False).id]


@pytest.mark.parametrize("arch", [{"model.n_loops": 2}, {"model.arch": "trm", "model.n_layer": 1,
                                                         "model.trm_inner_steps": 2,
                                                         "train.ema": 0.9}])
def test_parameter_sharing_members_equal_solo_runs(tmp_path, arch):
    cfgs = [small(seed=0, **arch), small(seed=1, **{**arch, "train.lr": 1e-3})]
    together = train_many(cfgs, store=tmp_path / "t", progress=False, group_size=16)
    for cfg, run in zip(cfgs, together):
        _same_run(run, train(cfg, store=tmp_path / "s", progress=False))


def test_groups_spread_over_worker_processes_give_the_same_runs(tmp_path):
    cfgs = _members()[:2]
    spread = train_many(cfgs, store=tmp_path / "w", progress=False, workers=2)
    for cfg, run in zip(cfgs, spread):
        _same_run(run, train(cfg, store=tmp_path / "s", progress=False))
        assert json.loads((run.path / "info.json").read_text())["group"]["size"] == 1


def test_a_worker_refusing_a_config_names_the_field(tmp_path):
    from grokbook.core.config import ConfigError
    good, impossible = small(seed=0), small(seed=1, **{"data.phi": 50.0})
    with pytest.raises(ConfigError) as e:
        train_many([good, small("dense", seed=2), impossible], store=tmp_path,
                   progress=False, workers=2)
    assert "data.phi" in str(e.value)


def test_a_run_resumed_at_step_0_does_not_share_a_group_with_a_fresh_one(tmp_path):
    a, b = small(seed=0), small(seed=1)
    with pytest.raises(KeyboardInterrupt):
        train(a, store=tmp_path / "g", progress=False, stop_after=10)  # state kept at step 0
    runs = train_many([a, b], store=tmp_path / "g", progress=False, group_size=16)
    for cfg, run in zip([a, b], runs):
        _same_run(run, train(cfg, store=tmp_path / "s", progress=False))


def _grokfast_members():
    return [small(seed=0, **{"train.grokfast_lamb": 2.0}), small(seed=0),
            small(seed=1, **{"train.grokfast_lamb": 5.0, "train.grokfast_alpha": 0.9})]


def test_grokfast_members_equal_solo_runs_and_resume(tmp_path):
    cfgs = _grokfast_members()
    together = train_many(cfgs, store=tmp_path / "together", progress=False, group_size=16)
    alone = [train(c, store=tmp_path / "alone", progress=False) for c in cfgs]
    for a, b in zip(together, alone):
        _same_run(a, b)
    # the filter changes the run (and its id); off, the id is the one it always had
    assert together[0].id != together[1].id
    assert (together[0].path / "metrics.json").read_bytes() != \
        (together[1].path / "metrics.json").read_bytes()
    # fields added later leave every earlier config's id as it was (values before them)
    from grokbook.core.config import preset
    cpu_before = {"data.phi": 6.3, "train.lr": 3e-3, "train.max_steps": 14000,
                  "train.eval_dense_until": 14000, "model.d_model": 64,
                  "model.init_scale": 1.0, "train.checkpoint_every": 500,
                  "train.stop_after_grokked": 0.0}  # an earlier cpu preset
    assert (preset("cpu", **cpu_before).hash(), preset("test").hash(),
            preset("paper", "dense").hash()) == \
        ("c6d96eaa2620", "8e2d71c5269d", "30b87d06aa9a")
    with pytest.raises(KeyboardInterrupt):
        train_many(cfgs, store=tmp_path / "cut", progress=False, group_size=16, stop_after=30)
    for a, b in zip(train_many(cfgs, store=tmp_path / "cut", progress=False, group_size=16), together):
        _same_run(a, b)


def test_grokfast_filter_is_the_published_ema():
    from grokbook.core.train import StackedAdamW
    from grokbook.core.ensemble import stack_models
    from grokbook.core.arch import build_model
    cfg = small("dense", **{"train.grokfast_lamb": 2.0, "train.grokfast_alpha": 0.5})
    model = stack_models([build_model(cfg, 80)])
    opt = StackedAdamW(model, [cfg])
    p = next(iter(opt.params.values()))
    grads = [torch.ones_like(p), 3 * torch.ones_like(p)]
    seen = []
    for g in grads:
        p.grad = g.clone()
        opt.amplify_slow_gradient()
        seen.append(p.grad.flatten()[0].item())
        opt.t += 1
    # ema = g1 = 1 -> g1 + 2*1 = 3; ema = 0.5*1 + 0.5*3 = 2 -> 3 + 2*2 = 7
    assert seen == [3.0, 7.0]


def test_workers_end_when_their_parent_is_killed(tmp_path):
    """kill -9 of the process that started the workers, right after it started them: they
    end within seconds (they would otherwise keep the cores and the run locks)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    cfgs = [small(seed=0, **{"train.max_steps": 4000}), small("dense", seed=1,
                                                               **{"train.max_steps": 4000})]
    script = ("import sys, pickle; from grokbook.core.store import train_many; "
              "train_many(pickle.loads(bytes.fromhex(sys.argv[1])), store=sys.argv[2], "
              "progress=False, workers=2)")
    import pickle
    parent = subprocess.Popen([sys.executable, "-c", script, pickle.dumps(cfgs).hex(),
                               str(tmp_path / "k")], env=dict(os.environ, OMP_NUM_THREADS="1"))

    def workers():
        out = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]
    deadline = time.time() + 60
    while len(workers()) < 2 and time.time() < deadline:
        time.sleep(0.2)
    kids = workers()
    assert len(kids) == 2, "the workers did not start"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    alive = kids
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [k for k in kids if os.path.exists(f"/proc/{k}")
                 and open(f"/proc/{k}/stat").read().split()[2] != "Z"]
    assert not alive, f"workers {alive} outlived their parent"


def test_a_short_group_does_not_wait_for_a_long_one_to_end(tmp_path):
    """Three groups on two workers: the third starts as soon as the short second one ends,
    not after the long first one (each worker's core is refilled when it frees)."""
    long_run = small(seed=0, **{"train.max_steps": 1000, "train.eval_every": 500,
                                "train.checkpoint_every": 500})
    short = [small("dense", seed=1), small("looped", seed=2)]
    runs = train_many([long_run, *short], store=tmp_path, progress=False, workers=2)
    done = {r.config.model.n_loops if r.config.model.arch != "trm" else "trm":
            (r.path / "info.json").stat().st_mtime for r in runs}
    assert max(done[1], done[2]) < done["trm"], done


def test_on_the_cpu_workers_take_one_run_each(tmp_path):
    """Three runs of one shape on two workers: three chunks of one, not a chunk of two
    beside a chunk of one (stacking buys nothing on a CPU, balance does)."""
    cfgs = [small(seed=s) for s in (0, 1, 2)]
    runs = train_many(cfgs, store=tmp_path, progress=False, workers=2)
    for run in runs:
        assert json.loads((run.path / "info.json").read_text())["group"]["size"] == 1


def test_on_the_cpu_runs_are_trained_as_themselves_by_default(tmp_path):
    """Without an explicit group_size a CPU run is never a member of a stacked group."""
    cfgs = [small(seed=s) for s in (0, 1)]
    for run in train_many(cfgs, store=tmp_path, progress=False):
        assert json.loads((run.path / "info.json").read_text())["group"]["size"] == 1


def test_a_run_sized_by_its_own_clock_stops_at_its_multiple_alone_together_and_resumed(tmp_path):
    # chapter 5's runs: train.stop_after_fitted ends a run at the first evaluation at or
    # past that multiple of its own fitted step (train_inferred >= FITTED_AT)
    from grokbook.analysis.definitions import fitted_step
    quick = {"data.phi": 0.5, "train.lr": 3e-3, "train.max_steps": 900, "train.eval_every": 20,
             "train.eval_dense_until": 900, "train.checkpoint_every": 100}
    clocked = small("dense", **{**quick, "train.stop_after_fitted": 1.5})
    alone = train(clocked, store=tmp_path / "s", progress=False)
    mem = fitted_step(alone.accuracy())
    assert mem is not None and alone.steps == next(s for s in range(mem, 901, 20) if s >= 1.5 * mem)
    assert alone.steps < 900 and alone.steps in alone.checkpoints
    full = train(small("dense", **quick), store=tmp_path / "s", progress=False)
    pd.testing.assert_frame_equal(full.metrics[full.metrics.step <= alone.steps]
                                  .reset_index(drop=True), alone.metrics.reset_index(drop=True))
    together = train_many([small("dense", seed=1, **quick), clocked], store=tmp_path / "t",
                          progress=False, group_size=16)
    _same_run(together[1], alone)
    with pytest.raises(KeyboardInterrupt):   # cut after memorizing: the resumed run must
        train(clocked, store=tmp_path / "c", progress=False, stop_after=mem + 50)  # recall it
    _same_run(train(clocked, store=tmp_path / "c", progress=False), alone)
