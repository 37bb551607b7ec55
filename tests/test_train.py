import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, small
from grokbook import RunStoreError, load_run, preset, train
from grokbook.core.train import eval_steps


def test_eval_schedule_dense_then_log():
    cfg = preset("paper")
    s = eval_steps(cfg.train)
    assert s[0] == 0 and s[-1] == 1_500_000
    assert 2000 in s and 20000 in s and 3000 not in s
    gaps = [b - a for a, b in zip(s, s[1:])]
    assert gaps[-1] > 10 * gaps[0]  # sparser later
    assert len(s) < 200


def test_same_config_in_fresh_stores_gives_identical_metrics(tmp_path):
    cfg = small()
    a = train(cfg, store=tmp_path / "a", progress=False)
    b = train(cfg, store=tmp_path / "b", progress=False)
    assert a.id == b.id
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    assert a.metrics.step.max() == 60 and set(a.metrics.split) >= {"train", "test_inferred_iid"}
    # real training happened: the training loss fell
    tl = a.metrics[a.metrics.split == "train"].set_index("step").loss
    assert tl.iloc[-1] < tl.iloc[1]


def test_interrupted_run_resumes_to_the_same_numbers(tmp_path):
    cfg = small()
    whole = train(cfg, store=tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, store=tmp_path / "cut", progress=False, stop_after=31)  # past ckpt 20
    run_dir = tmp_path / "cut" / "runs" / whole.id
    assert (run_dir / "state.pt").exists() and not (run_dir / "COMPLETE").exists()
    with pytest.raises(RunStoreError):
        load_run(whole.id, tmp_path / "cut")   # a half-written run is never served
    resumed = train(cfg, store=tmp_path / "cut", progress=False)
    pd.testing.assert_frame_equal(whole.metrics, resumed.metrics)
    assert resumed.checkpoints == whole.checkpoints == [0, 20, 40, 60]


def test_store_hit_returns_without_training(store):
    cfg = small()
    first = train(cfg, progress=False)
    t = time.perf_counter()
    again = train(cfg, progress=False)
    assert time.perf_counter() - t < 2.0
    assert again.id == first.id and again.info == first.info
    other = train(cfg.replace(seed=1), progress=False)
    assert other.id != first.id


def test_load_model_reproduces_the_stored_accuracy(store):
    run = train(small(), progress=False)
    from grokbook.core.train import ProbeSets
    probes = ProbeSets([run.dataset], "cpu")
    res = probes.evaluate(run.load_model(40))[0]
    stored = run.accuracy().loc[40]
    for name, (_, acc) in res.items():
        assert acc == pytest.approx(stored[name], abs=1e-9)


def test_corrupt_run_gets_a_clear_error_and_nothing_else_is_touched(store):
    good = train(small(), progress=False)
    bad = train(small(seed=5), progress=False)
    (bad.path / "metrics.json").write_text("{not json")
    with pytest.raises(RunStoreError) as e:
        train(small(seed=5), progress=False)
    assert str(bad.path) in str(e.value) and "rm -rf" in str(e.value)
    assert (bad.path / "COMPLETE").exists()        # not removed behind the user's back
    assert train(small(), progress=False).metrics.equals(good.metrics)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "grokbook", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)


def test_two_processes_asking_for_the_same_run_share_it(store):
    import os
    env = dict(os.environ, GROKBOOK_STORE=str(store))
    args = ["train", "--preset", "test", "--set", "train.max_steps=80", "--json", "--quiet"]
    procs = [subprocess.Popen([sys.executable, "-m", "grokbook", *args], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert outs[0] == outs[1]
    assert len(list((store / "runs").iterdir())) == 1


def test_cli_data_json_and_errors(store):
    r = _cli("data", "--preset", "test", "--json")
    out = json.loads(r.stdout)
    for key in ("n_entities", "n_relations", "atomic", "id_atomic", "ood_atomic",
                "train_inferred", "test_inferred_iid", "test_inferred_ood", "max_phi",
                "vocab_size", "probes"):
        assert key in out
    r = _cli("data", "--preset", "test", "--set", "data.out_degree=50", "--json")
    assert r.returncode == 2 and "data.out_degree" in r.stderr and "allowed" in r.stderr
    r = _cli("train", "--preset", "nope")
    assert r.returncode == 2 and "allowed: test, cpu, gpu, paper" in r.stderr
    r = _cli("data", "--preset", "test", "--set", "model.layers=3")
    assert r.returncode == 2 and "model.n_layer" in r.stderr  # lists the valid fields


def test_cli_train_json_and_original_format_trains(store, tmp_path):
    import os
    env = dict(os.environ, GROKBOOK_STORE=str(store))
    r = _cli("data", "--preset", "test", "--export", str(tmp_path / "orig"), "--json", env=env)
    assert r.returncode == 0, r.stderr
    r = _cli("train", "--preset", "test", "--from-json", str(tmp_path / "orig"), "--set",
             "train.max_steps=40", "--json", "--quiet", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("run", "steps", "wall_seconds", "steps_per_second", "final", "memorized_step",
                "grokked_step"):
        assert key in out
    assert out["steps"] == 40 and "test_inferred_iid" in out["final"]


def test_stop_at_ends_the_run_complete_at_the_first_evaluation_that_reaches_it(store):
    cfg = small(**{"train.max_steps": 200, "train.stop_at": 0.05})
    run = train(cfg, progress=False)
    iid = run.accuracy()["test_inferred_iid"]
    last = int(iid.index[-1])
    assert (iid.iloc[:-1] < 0.05).all()
    if last < 200:
        assert iid.iloc[-1] >= 0.05 and last in run.checkpoints
    assert run.load_model(last) is not None
    full = train(small(**{"train.max_steps": 200}), progress=False)
    pd.testing.assert_frame_equal(full.metrics[full.metrics.step <= last].reset_index(drop=True),
                                  run.metrics.reset_index(drop=True))


def test_evaluation_numbers_do_not_depend_on_the_pass_size():
    """The probe sets are evaluated in passes of ``chunk`` rows for speed; every accuracy
    and loss is bitwise the one-pass value (a cpu-shape TRM after a few real steps)."""
    import torch
    from grokbook.core.data import build_dataset
    from grokbook.core.train import Trainer
    torch.set_num_threads(1)
    cfg = preset("cpu").replace(**{"data.n_entities": 40})
    tr = Trainer(cfg, build_dataset(cfg.data, cfg.seed), "cpu")
    for _ in range(5):
        tr.train_step()
    whole = tr.probes.evaluate(tr.eval_model, chunk=1 << 20)
    assert tr.probes.y.shape[1] > 512          # so the default takes several passes
    assert tr.probes.evaluate(tr.eval_model) == whole
    assert tr.probes.evaluate(tr.eval_model, chunk=97) == whole
