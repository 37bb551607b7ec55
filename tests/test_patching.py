
import pandas as pd
import pytest
import torch

from conftest import small
from grokbook import build_dataset, train
from grokbook.analysis.patching import (SWAPS, causal_tracing, counterfactuals, heatmap_matrix,
                               patch_effects, tail_table, tracing_heatmap)
from grokbook.analysis.definitions import grokked_checkpoint as grokked_step
from grokbook.analysis.definitions import non_grokked_checkpoint as non_grokked_step
from grokbook.chapters.paths import before_checkpoint, path_summary


@pytest.fixture
def ds():
    cfg = small("dense")
    return build_dataset(cfg.data, cfg.seed)


@pytest.mark.parametrize("swap", SWAPS)
def test_counterfactuals_are_valid_facts_with_another_answer(ds, swap):
    q = ds.probes["train_inferred"]
    cf, keep = counterfactuals(ds, q, swap, seed=0)
    assert keep.mean() > 0.9
    tail = tail_table(ds)
    kept = {k: v[keep] for k, v in q.items()}
    assert (cf["t"] != kept["t"]).all()
    assert (tail[cf["h"], cf["r1"]] == cf["b"]).all() and (tail[cf["b"], cf["r2"]] == cf["t"]).all()
    for k in SWAPS:  # exactly the swapped token changes
        assert (cf[k] != kept[k]).all() if k == swap else (cf[k] == kept[k]).all()
    again, _ = counterfactuals(ds, q, swap, seed=0)
    assert all((again[k] == cf[k]).all() for k in cf)  # seeded


def test_patching_a_state_with_itself_changes_nothing(store):
    run = train(small("dense"), progress=False)
    model, ds = run.load_model(), run.dataset
    tokens, pos, _ = ds.tensors(ds.probes["train_inferred"])
    with torch.no_grad():
        pred = model(tokens, pos).argmax(-1)
    df = patch_effects(model, tokens, tokens, pos, pred)
    assert (df["strength"] == 0).all()
    assert df["prob_drop"].abs().max() < 1e-5


def test_causal_tracing_table_shape_and_columns(store):
    run = train(small("dense"), progress=False)
    model, ds = run.load_model(), run.dataset
    q = {k: v[:50] for k, v in ds.probes["train_inferred"].items()}
    tr = causal_tracing(model, ds, q)
    assert list(tr.columns) == ["swap", "stage", "layer", "position", "strength", "prob_drop",
                                "n", "clean_accuracy"]
    assert len(tr) == len(SWAPS) * len(model.stage_names) * 3
    assert tr["strength"].between(0, 1).all() and (tr["n"] > 0).all()
    # in a causal model a patch after the answer position, or above the last stage at
    # a position other than the answer's, cannot change the answer
    last = tr[(tr.stage == model.stage_names[-1]) & (tr.position < 2)]
    assert (last["strength"] == 0).all()
    # swapping r2 at the embedding at position 2 always changes what the model reads
    assert heatmap_matrix(tr).shape == (len(SWAPS) * len(model.stage_names), 3)
    tracing_heatmap(tr).to_dict()
    # target="answer" keeps only correctly answered queries; none at step 0 is fine
    early = causal_tracing(run.load_model(0), ds, q, target="answer")
    assert len(early) == len(tr)
    assert ((early["n"] == 0) == early["strength"].isna()).all()


def test_path_summary_of_a_checkpoint(store):
    run = train(small("dense"), progress=False)
    a = path_summary(run, run.checkpoints[-1], "train_inferred", n_queries=60)
    assert a.heatmap.shape[1] == 3 and a.bridge["n"] == 60


class FakeRun:
    def __init__(self, rows, checkpoints):
        self.checkpoints = checkpoints
        self._acc = pd.DataFrame(rows, columns=["step", "train_inferred", "test_inferred_iid"]
                                 ).set_index("step")

    def accuracy(self):
        return self._acc


def test_checkpoint_selection():
    rows = [(0, 0.0, 0.0), (100, 0.5, 0.0), (200, 1.0, 0.1), (300, 1.0, 0.2),
            (400, 1.0, 0.95), (500, 1.0, 0.97)]
    run = FakeRun(rows, [0, 200, 400, 500])
    assert non_grokked_step(run) == 200 and grokked_step(run) == 500
    never = FakeRun(rows[:4], [0, 100, 300])
    assert non_grokked_step(never) == 300 and grokked_step(never) is None
    assert non_grokked_step(FakeRun(rows[:2], [0, 100])) is None
    assert before_checkpoint(run)[0] == 200
    plateau = FakeRun([(0, 0.0, 0.0), (100, 0.8, 0.0), (200, 0.95, 0.1), (300, 0.97, 0.95)],
                      [0, 100, 200, 300])
    step, rule = before_checkpoint(plateau)       # never 0.99: the stated fallback
    assert step == 200 and "never reaches" in rule
