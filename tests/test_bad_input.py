"""Bad input: every config field and every loader case gets a sentence naming the field
(or the file and record), never a traceback, and the run store is left as it was."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from grokbook.book.cli import main
from grokbook.core.config import ConfigError, field_names, preset

INF, NAN = "inf", "nan"
# field -> values it must refuse: non-finite, negative, zero, wrong type, out of range
BAD = {
    "data.n_entities": [INF, -1, 0, "many", 1.5, 10**7],
    "data.n_relations": [INF, -1, 0, "x", 10**6],
    "data.out_degree": [INF, -1, 0, "x", 11],
    "data.ood_ratio": [INF, NAN, -0.1, 0, 1, "x"],
    "data.iid_test_ratio": [INF, NAN, -0.1, 0, 1.5, "x"],
    "data.phi": [INF, NAN, "-inf", -1, "x"],
    "data.probe_cap": [INF, -1, 0, "x"],
    "data.regime": ["nope", 5],
    "data.from_json": [3],
    "data.shuffle_inferred": ["maybe", 2],
    "model.arch": ["gpt", 1],
    "model.n_layer": [INF, -1, 0, "x", 10**4],
    "model.n_loops": [INF, -1, 0, "x", 10**4],
    "model.d_model": [INF, -1, 0, "x", 10**7, 33],
    "model.n_head": [INF, -1, 0, "x", 5, 10**5],
    "model.dropout": [INF, NAN, -0.1, 1, "x"],
    "model.tie_embeddings": ["maybe", 2],
    "model.trm_inner_steps": [INF, -1, 0, "x", 10**4],
    "model.trm_cycles": [INF, -1, 0, "x", 10**4],
    "model.trm_expansion": [INF, -1, 0, "x", 10**4],
    "model.init_scale": [INF, NAN, 0, -1, 101, "x"],
    "train.batch_size": [INF, -1, 0, "x", 10**9],
    "train.lr": [INF, NAN, -1, 0, "x"],
    "train.weight_decay": [INF, NAN, -1, "x"],
    "train.beta1": [INF, NAN, -0.1, 1, "x"],
    "train.beta2": [INF, NAN, -0.1, 1, "x"],
    "train.warmup_steps": [INF, -1, "x", 10**9],
    "train.grad_clip": [INF, NAN, -1, "x"],
    "train.max_steps": [INF, -1, 0, "x", 10**9],
    "train.eval_every": [INF, -1, 0, "x", 10**9],
    "train.eval_dense_until": [INF, -1, "x", 10**9],
    "train.eval_per_decade": [INF, -1, 0, "x", 10**9],
    "train.checkpoint_every": [INF, -1, 0, "x", 10**9],
    "train.ema": [INF, NAN, -0.1, 1, "x"],
    "train.stop_at": [INF, NAN, -0.1, 1.5, "x"],
    "train.stop_after_fitted": [INF, NAN, -1, 0.5, "x"],
    "train.stop_after_grokked": [INF, NAN, -1, 0.5, "x"],
    "train.device": ["tpu", 0],
    "train.precision": ["fp16", "half", 32],
    "train.grokfast_alpha": [INF, NAN, -0.1, 1, "x"],
    "train.grokfast_lamb": [INF, NAN, -1, "x"],
    "train.init_seed": [INF, -2, "x", 2**40],
    "train.optimizer": ["sgd", 3],
    "train.muon_lr": [INF, NAN, 0, -1, "x"],
    "train.muon_momentum": [INF, NAN, -0.1, 1, "x"],
    "train.loss": ["sparsemax", 0],
    "train.perp_grad": ["maybe", 2],
    "transfer.new_facts": [INF, -1, "x", 10**9],
    "transfer.chain_fraction": [INF, NAN, -0.1, 1.5, "x"],
    "transfer.replay": [INF, -1, "x", 10**9],
    "transfer.probe_cap": [INF, -1, "x", 10**9],
    "transfer.control_per_fact": [INF, 0, -1, "x", 10**9],
    "seed": [INF, -1, "x", 2**40],
    "parent": [7],
    "finetune": ["nope", 3],
}


def test_every_field_has_bad_values():
    assert sorted(BAD) == sorted(field_names(preset("test")))


@pytest.mark.parametrize("field,value", [(f, v) for f, vs in BAD.items() for v in vs])
def test_bad_value_is_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError) as e:
        preset("test", **{field: value})
    assert field in str(e.value)


def test_phi_above_max_phi_names_the_field_and_leaves_no_run(store):
    rc = main(["train", "--preset", "test", "--set", "data.phi=50", "--quiet"])
    assert rc == 2
    assert not (store / "runs").exists() or not any((store / "runs").iterdir())


@pytest.mark.parametrize("setting,field", [("train.lr=inf", "train.lr"),
                                           ("data.phi=inf", "data.phi"),
                                           ("seed=-1", "seed"),
                                           ("model.n_layer=1e400", "model.n_layer")])
def test_cli_refuses_without_traceback_and_store_untouched(tmp_path, setting, field):
    store = tmp_path / "store"
    r = subprocess.run([sys.executable, "-m", "grokbook", "train", "--preset", "test",
                        "--set", setting, "--store", str(store), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2, r.stderr
    assert field in r.stderr and "Traceback" not in r.stderr
    assert not store.exists() or not list(store.rglob("*.json"))


def test_a_diverging_run_stops_naming_the_step_and_is_not_stored(store):
    from grokbook.core.store import list_runs, train
    from grokbook.core.train import TrainingDiverged
    cfg = preset("test", **{"train.lr": 1e30, "train.grad_clip": 0.0, "train.warmup_steps": 0,
                            "train.max_steps": 50, "train.eval_every": 25})
    with pytest.raises(TrainingDiverged) as e:
        train(cfg, store=store, progress=False)
    assert "steps 0-25" in str(e.value) and "train.lr" in str(e.value)
    assert list_runs(store) == []
    assert not any((store / "runs").iterdir())


# ---------------------------------------------------------------- the original JSON format
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from grokbook.core.data import build_dataset, export_json
    ds = build_dataset(preset("test").data, 0)
    d = tmp_path_factory.mktemp("orig")
    export_json(ds, d)
    return ds, d


def _copy(src, dst, **files):
    dst.mkdir()
    for name in ("train.json", "test.json", "vocab.json"):
        if name in files:
            if files[name] is not None:
                (dst / name).write_text(files[name] if isinstance(files[name], str)
                                        else json.dumps(files[name]))
        else:
            (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _records(d, name="train.json"):
    return json.loads((d / name).read_text())


def _two_hop_index(recs):
    return next(i for i, r in enumerate(recs) if r["input_text"].count("<r_") == 2)


def _cases(d):
    tr = _records(d)
    i2 = _two_hop_index(tr)
    wrong_t = [dict(r) for r in tr]
    t = wrong_t[i2]["target_text"]
    inp = wrong_t[i2]["input_text"]
    ans = int(t[len(inp):].split(">")[0][3:])
    wrong_t[i2]["target_text"] = f"{inp}<e_{(ans + 1) % 60}></a>"
    contra = tr + [dict(tr[0], target_text=tr[0]["input_text"] + "<e_59></a>"
                        if not tr[0]["target_text"].endswith("<e_59></a>")
                        else tr[0]["input_text"] + "<e_58></a>")]
    atomic_pairs = {r["input_text"] for r in tr if r["input_text"].count("<r_") == 1}
    no_bridge = [r for r in tr if r["input_text"] != _first_hop(tr[i2]["input_text"])]
    assert _first_hop(tr[i2]["input_text"]) in atomic_pairs
    bad_int = [dict(tr[0], input_text=5)] + tr[1:]
    bad_tok = [dict(tr[0], input_text="<e_x><r_1>", target_text="<e_x><r_1><e_2></a>")] + tr[1:]
    return {
        "empty train": ({"train.json": []}, "train.json"),
        "non-string input_text": ({"train.json": bad_int}, "record 0"),
        "vocab of numbers": ({"vocab.json": [1, 2, 3]}, "vocab.json"),
        "empty vocab": ({"vocab.json": []}, "vocab.json"),
        "invalid vocab": ({"vocab.json": "{not json"}, "vocab.json"),
        "missing test.json": ({"test.json": None}, "test.json"),
        "no vocab, empty train": ({"vocab.json": None, "train.json": []}, "train.json"),
        "entity token not a number": ({"train.json": bad_tok}, "<e_x>"),
        "two-hop answer disagrees": ({"train.json": wrong_t}, f"record {i2}"),
        "contradictory atomic facts": ({"train.json": contra}, f"record {len(tr)}"),
        "two-hop without its bridge fact": ({"train.json": no_bridge}, "bridge"),
    }


def _first_hop(two_hop_input):
    return two_hop_input[:two_hop_input.index(">", two_hop_input.index("<r_")) + 1]


def test_every_loader_case_is_named(exported, tmp_path):
    from grokbook.core.data import load_json
    _, d = exported
    for k, (name, (files, needle)) in enumerate(_cases(d).items()):
        bad = _copy(d, tmp_path / f"case{k}", **files)
        with pytest.raises(ValueError) as e:
            load_json(bad)
        msg = str(e.value)
        assert needle in msg, (name, msg)
        assert str(bad) in msg or "from_json" in msg, (name, msg)


def test_loader_errors_reach_the_cli_as_one_sentence(exported, tmp_path, store):
    _, d = exported
    bad = _copy(d, tmp_path / "bad", **{"test.json": None})
    for argv in (["data", "--from-json", str(bad)],
                 ["train", "--preset", "test", "--from-json", str(bad), "--quiet"]):
        r = subprocess.run([sys.executable, "-m", "grokbook", *argv], capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 2 and "test.json" in r.stderr and "Traceback" not in r.stderr
    assert not (store / "runs").exists() or not any((store / "runs").iterdir())


def test_untyped_training_records_take_ood_flags_from_test_json(exported, tmp_path):
    from grokbook.core.data import load_json
    ds, d = exported
    tr = _records(d)
    for r in tr:
        r.pop("type", None)  # as the original generator writes train.json
    orig = _copy(d, tmp_path / "orig", **{"train.json": tr})
    loaded = load_json(orig)
    assert loaded.summary()["ood_atomic"] == ds.summary()["ood_atomic"] > 0
    assert (loaded.atomic_ood == ds.atomic_ood).all()


def test_relative_from_json_is_stored_absolute(exported, tmp_path, store, monkeypatch):
    from grokbook.core.store import load_run, train
    _, d = exported
    monkeypatch.chdir(d.parent)
    cfg = preset("test", **{"data.from_json": d.name, "train.max_steps": 20,
                            "train.eval_every": 10, "train.checkpoint_every": 10})
    run = train(cfg, store=store, progress=False)
    monkeypatch.chdir(tmp_path)
    again = load_run(run.id, store)
    assert again.config.data.from_json == str(d)
    assert again.dataset.summary()["atomic"] == run.dataset.summary()["atomic"]
