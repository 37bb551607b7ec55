"""The accelerators chapter 7 tries beside Grokfast: Muon, StableMax and the
perpendicular gradient, each a config knob that changes training and resumes exactly."""
import pytest
import torch

from grokbook import preset
from grokbook.core.config import ConfigError
from grokbook.core.store import train
from grokbook.core.train import stablemax_cross_entropy

SHORT = {"train.max_steps": 30, "train.eval_every": 10, "train.eval_dense_until": 30,
         "train.checkpoint_every": 10}
KNOBS = {"muon": {"train.optimizer": "muon"}, "stablemax": {"train.loss": "stablemax"},
         "perp_grad": {"train.perp_grad": True},
         "stablemax + perp_grad": {"train.loss": "stablemax", "train.perp_grad": True,
                                   "train.weight_decay": 0.0}}


def losses(run):
    return run.metrics[run.metrics.split == "train"]["loss"].dropna().tolist()


@pytest.mark.parametrize("name", list(KNOBS))
def test_each_accelerator_changes_training(name, store):
    natural = train(preset("test", **SHORT), store=store, progress=False)
    other = train(preset("test", **SHORT, **KNOBS[name]), store=store, progress=False)
    assert other.id != natural.id
    a, b = losses(natural), losses(other)
    assert len(a) == len(b) and a != b
    assert all(x == x for x in b)                    # finite, no NaN


def test_muon_resumes_exactly_from_a_checkpoint(tmp_path):
    cfg = preset("test", **SHORT, **KNOBS["muon"])
    whole = train(cfg, store=tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, store=tmp_path / "cut", progress=False, stop_after=15)
    resumed = train(cfg, store=tmp_path / "cut", progress=False)
    assert whole.metrics.equals(resumed.metrics)


def test_stablemax_is_the_papers_function():
    z = torch.tensor([[2.0, -1.0, 0.0]])
    s = torch.tensor([3.0, 0.5, 1.0])
    expect = -torch.log(s[0] / s.sum())
    assert torch.allclose(stablemax_cross_entropy(z, torch.tensor([0])), expect)
    # no exponential: a huge logit stays finite
    assert torch.isfinite(stablemax_cross_entropy(torch.tensor([[1e6, -1e6]]), torch.tensor([1])))


def test_the_perpendicular_gradient_is_orthogonal_to_the_weight_with_its_norm_kept():
    from grokbook.core.arch import build_model
    from grokbook.core.ensemble import stack_models
    from grokbook.core.train import StackedAdamW
    cfgs = [preset("test"), preset("test", **{"train.perp_grad": True})]
    torch.manual_seed(0)
    model = stack_models([build_model(cfgs[0], 80), build_model(cfgs[0], 80)])
    opt = StackedAdamW(model, cfgs)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.perpendicular_gradient(torch.tensor([False, True]))
    for n, p in model.named_parameters():
        assert torch.equal(p.grad[0], before[n][0]), n              # member 0 untouched
        w, g = p.detach()[1].flatten(), p.grad[1].flatten()
        assert abs(float(w @ g)) <= 1e-3 * float(w.norm() * g.norm()) + 1e-6, n
        assert torch.allclose(g.norm(), before[n][1].norm(), rtol=1e-4), n


@pytest.mark.parametrize("field,value", [("train.optimizer", "sgd"), ("train.muon_lr", 0),
                                         ("train.muon_momentum", 1.0),
                                         ("train.loss", "sparsemax")])
def test_each_knob_refuses_a_bad_value_naming_it(field, value):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        preset("test", **{field: value})
