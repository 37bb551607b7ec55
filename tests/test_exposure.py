"""Held-out accuracy by how often the second-hop fact was seen as a second hop
(analysis.exposure; chapter 2's exposure table)."""
import numpy as np
import pandas as pd
import torch

from grokbook import build_dataset, preset
from grokbook.analysis import exposure as ex
from grokbook.analysis.definitions import wilson
from grokbook.chapters import recipe


def _ds(name="test"):
    cfg = preset(name)          # the cpu graph (100 entities) holds ~400 held-out queries
    return build_dataset(cfg.data, cfg.seed)


def test_exposure_counts_second_hops_of_training_facts():
    ds = _ds()
    q = ds.probes["test_inferred_iid"]
    got = ex.hop2_exposure(ds, q)
    two = ds.train["r2"] >= 0
    pairs = list(zip(ds.train["b"][two], ds.train["r2"][two]))
    want = [pairs.count((b, r)) for b, r in zip(q["b"], q["r2"])]
    assert got.tolist() == want and got.max() > 1
    # OOD queries were never composed in training: exposure 0 by construction
    assert (ex.hop2_exposure(ds, ds.probes["test_inferred_ood"]) == 0).all()
    # summed over the ID atomic facts, exposure counts every training two-hop fact once
    idf = ~ds.atomic_ood
    atoms = {"b": ds.atomic["h"][idf], "r2": ds.atomic["r1"][idf]}
    assert ex.hop2_exposure(ds, atoms).sum() == int(two.sum())


class _Oracle(torch.nn.Module):
    """Answers a two-hop query with its tail when ``knows`` says so, else with another token."""

    def __init__(self, ds, split, knows):
        super().__init__()
        x, _, t = ds.tensors(ds.probes[split])
        self.V = len(ds.vocab)
        self.table = {tuple(r): (int(a) if k else (int(a) + 1) % self.V)
                      for r, a, k in zip(x.tolist(), t, knows)}

    def forward(self, x, pos):
        out = torch.zeros(len(x), self.V)
        for i, r in enumerate(x.tolist()):
            out[i, self.table.get(tuple(r), 0)] = 1.0
        return out


def test_accuracy_by_exposure_and_the_rise_rule_both_ways():
    ds = _ds("cpu")
    q = ds.probes["test_inferred_iid"]
    n = ex.hop2_exposure(ds, q)
    frequent = _Oracle(ds, "test_inferred_iid", n >= 5)     # answers only well-seen facts
    t = ex.accuracy_by_exposure(frequent, ds, splits=("test_inferred_iid",))
    acc = t.set_index("exposure")["accuracy"]
    assert acc["1"] == 0.0 and acc[">= 5"] == 1.0
    assert t["queries"].sum() == len(q["h"])
    assert ex.exposure_rises(t) is True
    everything = _Oracle(ds, "test_inferred_iid", np.ones(len(n), bool))
    t2 = ex.accuracy_by_exposure(everything, ds, splits=("test_inferred_iid",))
    assert (t2["accuracy"] == 1.0).all() and ex.exposure_rises(t2) is False
    assert ex.exposure_rises(t2[t2["exposure"] != "1"]) is None


def test_exposure_table_in_words_and_wide():
    rows = []
    for run, (a5, a1, ood) in {"seed 0": (0.98, 0.64, 0.02), "seed 1": (0.3, 0.28, 0.01)}.items():
        for split, e, k, a in (("test_inferred_iid", "1", 14, a1),
                               ("test_inferred_iid", ">= 5", 250, a5),
                               ("test_inferred_ood", "0", 400, ood)):
            lo, hi = wilson(a, k)
            rows.append({"split": split, "exposure": e, "queries": k, "accuracy": a,
                         "lo": lo, "hi": hi, "run": run})
    t = pd.DataFrame(rows)
    text = recipe.describe_exposure(t)
    assert "in 1 of 2 runs" in text and "seed 0: 0.98 / 0.64" in text
    assert "0.01-0.02" in text and "Not measured" not in text
    one = t[~((t["run"] == "seed 1") & (t["exposure"] == "1"))]     # a bucket left empty
    text = recipe.describe_exposure(one)
    assert "in 1 of 1 runs" in text and "Not measured in 1 run" in text
    assert recipe.describe_exposure(recipe.exposure_table(pd.DataFrame())).startswith("No run")
    wide = recipe.exposure_wide(t)
    assert list(wide.columns[-2:]) == ["seed 0", "seed 1"] and len(wide) == 3
