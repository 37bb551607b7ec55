"""The benchmark runs on a tiny config and reports every field; no timing assertions."""
import json
import math

from grokbook import build_dataset, preset
from grokbook.book.bench import GPT2_VOCAB, WANG_SEQ_LEN, bench, format_report, wang_examples
from grokbook.book.cli import main

TINY = {"train.batch_size": 32, "model.d_model": 16, "model.n_head": 2}


def _positive(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_bench_reports_every_field_with_positive_numbers():
    has_hf = True
    try:
        import transformers  # noqa: F401
    except ImportError:
        has_hf = False
    r = bench(preset("test", arch="dense", **TINY), steps=2, repeats=2, warmup=1, threads=1,
              baseline_steps=1, baseline_repeats=1, preset_name="test")
    json.dumps(r)  # one JSON object
    for key in ("steps_per_second", "tokens_per_second", "flops_per_second", "peak_fraction",
                "peak_flops_per_second", "batch_size", "peak_memory_bytes", "flops_per_token"):
        assert _positive(r[key]), key
    assert r["device"] == "cpu" and r["batch_size"] == 32
    assert r["model"] == {"arch": "transformer", "n_layer": 2, "d_model": 16, "n_head": 2,
                          "vocab_size": 72, "n_loops": 1}
    for key in ("forward_ms", "backward_ms", "optimizer_ms", "step_ms", "fixed_step_ms"):
        assert _positive(r["step_split"][key]), key
    assert "flops_per_token" in r["flops_formula"] and r["peak_source"]
    if has_hf:
        assert r["baseline"]["available"] and r["baseline"]["vocab_size"] == GPT2_VOCAB + 72
        assert _positive(r["baseline_steps_per_second"]) and _positive(r["ratio"])
        assert _positive(r["baseline"]["flops_per_second"])
    else:
        assert not r["baseline"]["available"] and "transformers" in r["baseline"]["reason"]
    assert "steps/s" in format_report(r)


def test_bench_cli_json(capsys):
    assert main(["bench", "--preset", "test", "--steps", "2", "--repeats", "1", "--warmup", "1",
                 "--threads", "1", "--no-baseline", "--no-split", "--json",
                 *[f"--set={k}={v}" for k, v in TINY.items()]]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["preset"] == "test" and "baseline" not in r and _positive(r["steps_per_second"])


def test_wang_examples_are_padded_with_loss_on_the_answer_only():
    ds = build_dataset(preset("test").data, 0)
    ids, mask, labels = wang_examples(ds)
    x, pos, y = ds.tensors(ds.train)
    v = ds.vocab
    assert ids.shape == labels.shape == mask.shape == (len(x), WANG_SEQ_LEN)
    for i in (int((pos == 1).nonzero()[0]), int((pos == 2).nonzero()[0])):  # atomic, two-hop
        p = int(pos[i])
        seq = [*x[i, :p + 1].tolist(), int(y[i]), v.end]
        assert ids[i, :p + 3].tolist() == [GPT2_VOCAB + s for s in seq]
        assert (ids[i, p + 3:] == GPT2_VOCAB + v.pad).all()
        assert mask[i].tolist() == [1] * (p + 3) + [0] * (WANG_SEQ_LEN - p - 3)
        assert labels[i].tolist() == [-100] * (p + 1) + ids[i, p + 1:p + 3].tolist() + \
            [-100] * (WANG_SEQ_LEN - p - 3)


def test_cpu_theoretical_peak_is_positive_or_unknown():
    from grokbook.book.bench import cpu_theoretical_peak
    p = cpu_theoretical_peak(1)
    assert p is None or _positive(p["flops_per_second"])


def test_baseline_is_skipped_with_a_reason_without_transformers(monkeypatch):
    import sys
    from grokbook.book.bench import bench_wang
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails
    cfg = preset("test", arch="dense", **TINY)
    b = bench_wang(cfg, build_dataset(cfg.data, 0), "cpu", 1, 1, 1)
    assert b["available"] is False and "transformers" in b["reason"]


def test_profile_times_every_part_of_a_real_run(capsys):
    """``grokbook bench --profile``: a real run, every part timed, fractions of its wall."""
    from grokbook.book.cli import main
    from grokbook.book.profile import PARTS, profile_run
    p = profile_run(preset("test"), steps=60)
    assert set(p["fractions"]) == {*PARTS, "other"}
    assert abs(sum(p["fractions"].values()) - 1) < 0.05
    assert all(p["seconds"][k] > 0 for k in PARTS)     # each was called and timed
    assert p["achieved_flops"] > 0 and 0 < p["fraction_of_gemm_peak"] < 5
    assert p["threads"] == 1 and p["config"]["steps"] == 60
    assert main(["bench", "--preset", "test", "--profile", "0"]) == 2
    assert "--profile" in capsys.readouterr().err
