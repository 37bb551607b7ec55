import pytest
import torch

from conftest import small
from grokbook.core.models import Transformer


def _model(n_loops=1):
    torch.manual_seed(0)
    return Transformer(vocab_size=50, n_layer=3, d_model=32, n_head=4, n_loops=n_loops).eval()


def _queries(n=16):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 50, (n, 3), generator=g)


def test_cache_matches_forward_and_names_are_stable():
    m, x = _model(), _queries()
    logits, cache = m.run_with_cache(x)
    assert list(cache) == ["embed", "resid_post.L0", "resid_post.L1", "resid_post.L2"]
    assert torch.allclose(logits, m(x), atol=1e-6)
    pos = torch.full((len(x),), 2)
    assert torch.allclose(m(x, pos), logits[:, 2], atol=1e-6)


def test_looped_blocks_share_weights_and_expose_every_pass():
    m = _model(n_loops=2)
    assert m.stage_names[-1] == "resid_post.P1.L2" and len(m.stage_names) == 7
    assert m.num_params() == _model(1).num_params()  # looping adds no parameters


@pytest.mark.parametrize("n_loops", [1, 2])
def test_patching_a_state_with_itself_changes_nothing(n_loops):
    m, x = _model(n_loops), _queries()
    logits, cache = m.run_with_cache(x)
    for s, name in enumerate(m.stage_names):
        for p in range(3):
            patched = cache[name].clone()
            patched[:, p] = cache[name][:, p]
            out = m.unembed(m.run_from(s, patched))
            assert torch.equal(out, logits), (name, p)


def test_patching_with_another_querys_state_changes_the_logits():
    m, x = _model(), _queries()
    other = x.roll(1, dims=0)
    logits, cache = m.run_with_cache(x)
    _, cache_o = m.run_with_cache(other)
    patched = cache["resid_post.L0"].clone()
    patched[:, 0] = cache_o["resid_post.L0"][:, 0]
    out = m.unembed(m.run_from("resid_post.L0", patched))
    assert not torch.allclose(out[:, 2], logits[:, 2])
    # causal: patching position 2 cannot change what positions 0 and 1 compute
    patched = cache["embed"].clone()
    patched[:, 2] = cache_o["embed"][:, 2]
    out = m.unembed(m.run_from("embed", patched))
    assert torch.allclose(out[:, :2], logits[:, :2], atol=1e-6)
    assert not torch.allclose(out[:, 2], logits[:, 2])


def test_decay_rule_two_d_only():
    """Every weight that is 2-D in the solo model decays; biases and norms don't."""
    from grokbook.core.ensemble import stack_models
    from grokbook.core.train import StackedAdamW
    m = _model()
    stacked = stack_models([m, _model()])
    opt = StackedAdamW(stacked, [small(), small()])
    solo = dict(m.named_parameters())
    assert opt.decays.keys() == solo.keys()  # tied weights counted once, solo names
    assert all(opt.decays[n] == (p.dim() == 2) for n, p in solo.items())
    assert any(opt.decays.values()) and not all(opt.decays.values())
