import pytest
import torch

from grokbook.core.config import ConfigError, preset
from grokbook.core.trm import SEQ_LEN, TRM


def _model(**kw):
    torch.manual_seed(0)
    args = dict(d_model=16, n_layer=2, inner_steps=3, cycles=2, expansion=2)
    args.update(kw)
    return TRM(vocab_size=40, **args).eval()


def _queries(n=12):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 38, (n, 3), generator=g)
    x[: n // 2, 2] = 38  # atomic queries: [h, r, <pad>]
    return x


def test_stage_names_cover_every_latent_update():
    m = _model()
    assert m.stage_names[0] == "embed"
    assert m.stage_names[1:5] == ["z_L.cycle0.step0", "z_L.cycle0.step1", "z_L.cycle0.step2",
                                  "z_H.cycle0"]
    assert m.stage_names[-1] == "z_H.cycle1" and len(m.stage_names) == 1 + 2 * (3 + 1)


def test_cache_names_shapes_and_lens_on_every_state():
    m, x = _model(), _queries()
    logits, cache = m.run_with_cache(x)
    assert list(cache) == m.stage_names
    assert logits.shape == (len(x), SEQ_LEN, 40)
    for name, state in cache.items():
        assert state.shape == (len(x), SEQ_LEN, 3 * 16), name
        lens = m.unembed(state)                    # the lens reads the named latent
        assert lens.shape == (len(x), SEQ_LEN, 40) and torch.isfinite(lens).all()
        assert m.unembed(state[:, 1]).shape == (len(x), 40)
    # the last stage's lens is the model's output
    assert torch.allclose(m.unembed(cache["z_H.cycle1"]), logits, atol=1e-6)


def test_forward_reads_the_answer_slot():
    m, x = _model(), _queries()
    logits, _ = m.run_with_cache(x)
    pos = torch.where(x[:, 2] == 38, 1, 2)
    assert torch.allclose(m(x, pos), logits[torch.arange(len(x)), pos + 1], atol=1e-6)
    assert torch.allclose(m(x), logits, atol=1e-6)


def test_patching_a_state_with_itself_changes_nothing():
    m, x = _model(), _queries()
    logits, cache = m.run_with_cache(x)
    for s, name in enumerate(m.stage_names):
        for p in range(SEQ_LEN):
            patched = cache[name].clone()
            patched[:, p] = cache[name][:, p]
            assert torch.equal(m.unembed(m.run_from(name, patched)), logits), (name, p)
            assert torch.equal(m.unembed(m.run_from(s, patched)), logits)


def test_patching_another_querys_state_changes_the_answer():
    m, x = _model(), _queries()
    other = x.roll(1, dims=0)
    logits, cache = m.run_with_cache(x)
    _, cache_o = m.run_with_cache(other)
    for name in ("embed", "z_L.cycle0.step1", "z_H.cycle0"):
        patched = cache[name].clone()
        patched[:, 0] = cache_o[name][:, 0]
        out = m.unembed(m.run_from(name, patched))
        assert not torch.allclose(out[:, 3], logits[:, 3]), name  # non-causal: slot 3 moves


def test_gradients_flow_only_through_the_last_cycle():
    m, x = _model(), _queries()
    pos = torch.full((len(x),), 2)

    def grads(train_mode, manual=False):
        m.zero_grad()
        m.train(train_mode)
        if manual:  # cycle 0 without a graph, cycle 1 with one
            e = m.embed(x)
            with torch.no_grad():
                zl, zh = m.z_L_init.expand_as(e), m.z_H_init.expand_as(e)
                for _ in range(m.inner_steps):
                    zl = m.net(zl + zh + e)
                zh = m.net(zh + zl)
            for _ in range(m.inner_steps):
                zl = m.net(zl + zh + e)
            zh = m.net(zh + zl)
            out = m.unembed(zh[torch.arange(len(x)), pos + 1])
        else:
            out = m(x, pos)
        out.logsumexp(-1).sum().backward()
        return torch.cat([p.grad.reshape(-1) for p in m.parameters()])

    truncated, manual, full = grads(True), grads(True, manual=True), grads(False)
    assert torch.allclose(truncated, manual, atol=1e-5)
    assert not torch.allclose(truncated, full, atol=1e-5)   # eval-mode backprop goes deeper


def test_trm_config_builds_a_trm():
    from grokbook.core.arch import build_model
    cfg = preset("test", arch="trm")
    m = build_model(cfg, 72)
    assert isinstance(m, TRM) and m.flops_per_token() > 0 and m.num_params() > 0
    assert preset("test") == cfg   # the TRM is the subject
    with pytest.raises(ConfigError):
        preset("test", arch="nope")


def test_trm_trains_through_the_trainer(store):
    from grokbook import train
    cfg = preset("test", arch="trm", **{"train.max_steps": 100, "train.eval_every": 20,
                                "train.checkpoint_every": 50})
    run = train(cfg, progress=False)
    loss = run.metrics[run.metrics.split == "train"].set_index("step")["loss"]
    assert loss.loc[100] < 0.9 * loss.loc[20]          # mean loss of steps 81-100 vs 1-20
    assert loss.diff().dropna().lt(0).sum() >= 3         # and it falls most of the way
    model = run.load_model()
    assert isinstance(model, TRM)
