import numpy as np
import torch
import torch.nn.functional as F

from conftest import small
from grokbook import build_dataset, train
from grokbook.analysis.lens import (bridge_first_layer, bridge_found, bridge_profile, bridge_rates,
                           lens_chart, lens_summary, logit_lens, strict_check)
from grokbook.analysis.patching import tail_table


class Planted(torch.nn.Module):
    """A model whose residual carries the bridge b at the r1 position at stage ``mid`` and
    the answer t at the last position at stage ``out`` (residual width = vocabulary)."""

    stage_names = ["embed", "mid", "out"]

    def __init__(self, ds):
        super().__init__()
        self.V, self.E = len(ds.vocab), ds.vocab.n_entities
        self.tail = torch.as_tensor(tail_table(ds))

    def run_with_cache(self, idx):
        x = F.one_hot(idx, self.V).float() * 10
        b = self.tail[idx[:, 0], idx[:, 1] - self.E]
        t = self.tail[b, idx[:, 2] - self.E]
        mid = x.clone()
        mid[:, 1] = F.one_hot(b, self.V).float() * 10
        out = mid.clone()
        out[:, 2] = F.one_hot(t, self.V).float() * 10
        return out, {"embed": x, "mid": mid, "out": out}

    def unembed(self, x):
        return x


def test_lens_finds_a_planted_bridge_and_answer():
    cfg = small("dense")
    ds = build_dataset(cfg.data, cfg.seed)
    q = ds.probes["train_inferred"]
    lens = logit_lens(Planted(ds), ds, q)
    n = len(q["h"])
    assert set(lens.columns) == {"stage", "layer", "position", "target", "query", "rank", "prob"}
    assert len(lens) == 3 * 3 * 3 * n   # stages x positions x targets x queries
    b = lens[(lens.target == "b") & (lens.position == 1)]
    assert (b[b.stage == "mid"]["rank"] == 1).all() and (b[b.stage == "mid"]["prob"] > 0.99).all()
    assert (b[b.stage == "embed"]["rank"] > 1).mean() > 0.9  # the r1 token is on top there
    t = lens[(lens.target == "t") & (lens.position == 2) & (lens.stage == "out")]
    assert (t["rank"] == 1).all()
    r2 = lens[(lens.target == "r2") & (lens.position == 2) & (lens.stage == "embed")]
    assert (r2["rank"] == 1).all()
    assert bridge_first_layer(lens) == 1
    rates = bridge_rates(lens)
    assert rates["strict"] == 1.0 and rates["lenient"] == 1.0 and rates["strict_stage"] == "mid"
    assert bridge_rates(lens, stage="embed")["strict"] < 0.1
    found = bridge_found(lens, stage=0)
    assert found["lenient"].all() and len(found) == n
    s = lens_summary(lens)
    row = s[(s.stage == "mid") & (s.position == 1) & (s.target == "b")].iloc[0]
    assert row.mrr == 1.0 and row.top1 == 1.0 and row.n == n
    assert list(bridge_profile(lens)["stage"]) == ["embed", "mid", "out"]
    lens_chart(s).to_dict()


def test_strict_check_sees_a_planted_bridge_only_at_its_stage():
    cfg = small("dense")
    ds = build_dataset(cfg.data, cfg.seed)
    q = ds.probes["train_inferred"]
    at_mid = strict_check(Planted(ds), ds, q, "mid")       # the planted model answers all
    assert at_mid["rate"] == 1.0 and at_mid["readable"] and at_mid["answered"] == len(q["h"])
    at_embed = strict_check(Planted(ds), ds, q, "embed")  # no bridge there: the rule is blind
    assert at_embed["rate"] < 0.1 and not at_embed["readable"]


def test_lens_on_a_trained_transformer_uses_every_stage_and_position(store):
    run = train(small("dense"), progress=False)
    model, ds = run.load_model(), run.dataset
    q = ds.probes["train_inferred"]
    atomic = ds.probes["id_atomic"]
    mixed = {k: np.concatenate([q[k][:20], atomic[k][:5]]) for k in q}  # atomic rows dropped
    lens = logit_lens(model, ds, mixed, targets=("b", "t"))
    assert len(lens) == len(model.stage_names) * 3 * 2 * 20
    assert list(lens.stage.cat.categories) == model.stage_names
    assert lens["rank"].between(1, len(ds.vocab)).all() and lens["prob"].between(0, 1).all()
    # the final stage's lens is the model's own output
    tokens, pos, _ = ds.tensors({k: v[:20] for k, v in q.items()})
    with torch.no_grad():
        top = model(tokens, pos).argmax(-1)
    last = lens[(lens.stage == model.stage_names[-1]) & (lens.position == 2) & (lens.target == "t")]
    assert ((last.sort_values("query")["rank"].to_numpy() == 1)
            == (top == torch.as_tensor(q["t"][:20])).numpy()).all()


def test_site_lens_correct_is_the_models_own_answer_for_every_architecture(store):
    """The lens reads correctness where each model answers: the transformer at the last
    input token, the TRM in the answer slot it appends (it was read one slot early, so a
    grokked TRM looked like chance on every lens-based accuracy)."""
    import torch

    from conftest import small
    from grokbook.analysis.lens import site_lens
    from grokbook.core.store import train
    for arch in ("trm", "dense"):
        run = train(small(arch, **{"train.max_steps": 200, "train.eval_every": 100,
                                   "train.checkpoint_every": 100}), store=store,
                    progress=False)
        ds, model = run.dataset, run.load_model()
        for probe in ("id_atomic", "train_inferred"):
            table = ds.probes[probe]
            _, correct, _ = site_lens(model, ds, table, targets=())
            tokens, pos, y = ds.tensors(table)
            with torch.no_grad():
                own = (model(tokens, pos).argmax(-1) == y).numpy()
            assert (correct == own).all(), (arch, probe)
        assert own.mean() > 0.1, arch       # a model that answers: the check can fail
