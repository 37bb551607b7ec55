"""Chapter 7's shortcuts: steps and FLOPs to grok against the natural run, in words."""
import pandas as pd
import pytest

from grokbook import preset
from grokbook.chapters import shortcuts as S


class FakeRun:
    """A stored run reduced to what the table reads: its accuracy curve and config."""

    def __init__(self, rid, grok_at, budget=10_000, flops=1e6):
        self.id, self.info = rid, {"flops_per_step": flops}
        self.config = preset("test", **{"train.max_steps": budget})
        steps = list(range(0, budget + 1, 500))
        self._acc = pd.DataFrame({
            "train_inferred": [1.0 if s >= 1000 else 0.5 for s in steps],
            "test_inferred_iid": [0.95 if grok_at is not None and s >= grok_at else 0.1
                                  for s in steps]}, index=pd.Index(steps, name="step"))

    def accuracy(self):
        return self._acc


def test_table_ratios_and_words():
    runs = {S.NATURAL: FakeRun("n", 9000), "fast": FakeRun("f", 2500, flops=1.1e6),
            "slow": FakeRun("s", 6000), "never": FakeRun("x", None)}
    t = S.shortcut_table(runs)
    assert list(t["shortcut"]) == list(runs)
    row = t.set_index("shortcut")
    assert row.loc["fast", "grokked_step"] == 2500 and pd.isna(row.loc["never", "grokked_step"])
    assert abs(row.loc["fast", "steps_vs_natural"] - 2500 / 9000) < 1e-12
    assert abs(row.loc["fast", "flops_vs_natural"] - 2500 * 1.1 / 9000) < 1e-12
    assert row.loc["fast", "heldout_at_memorized"] == 0.1
    ev = {"others": {"fast": {"outcome": "same", "reason": "r", "d": {"d": 0.01}},
                     "slow": {"outcome": "different", "reason": "r", "d": {"d": 0.4}}}}
    v = S.shortcut_verdicts(t, ev).set_index("shortcut")
    assert v.loc["fast", "path_vs_natural"] == "same" and v.loc["slow", "path_d"] == 0.4
    words = S.describe(v.reset_index())
    assert "at most 0.33 of the natural steps: fast." in words    # 0.28 <= 1/3, 0.67 not
    assert "never: did not grok" in words
    rows = pd.DataFrame([dict(shortcut=S.NATURAL, hop1=0.24, hop2=0.01, transfer_vs_natural="-"),
                         dict(shortcut="fast", hop1=0.22, hop2=0.0,
                              transfer_vs_natural=S.SAME_TRANSFER)])
    words = S.describe(S.with_transfer(v.reset_index(), rows))
    assert "transfer of new facts after fine-tuning: hop 1 0.22, hop 2 0.00 (no difference " \
           "from the natural run's 0.24 / 0.01)" in words
    assert "slow: step 6,000" in words and "slow: step 6,000 (0.67x the natural steps, " \
           "0.67x its FLOPs); path vs the naturally grokked model: different." in words


def test_no_speed_up_without_a_grokked_natural_run():
    t = S.shortcut_table({S.NATURAL: FakeRun("n", None), "fast": FakeRun("f", 2500)})
    assert t["steps_vs_natural"].isna().all()
    assert "no speed-up can be stated" in S.describe(S.shortcut_verdicts(t, {}))


@pytest.mark.parametrize("name", ["test", "cpu", "gpu"])
def test_each_shortcut_scales_one_setting_up_and_stops_at_grokking(name):
    base = preset(name)
    cfgs = S.shortcut_configs(name)
    assert cfgs.pop(S.NATURAL) == base and len(cfgs) >= 3
    for label, cfg in cfgs.items():
        assert cfg.train.stop_at == S.GROKKED_AT
        changed = {k: (getattr(getattr(base, sec), k), getattr(getattr(cfg, sec), k))
                   for sec in ("data", "train") for k in vars(getattr(base, sec))
                   if getattr(getattr(base, sec), k) != getattr(getattr(cfg, sec), k)
                   and k != "stop_at"}
        assert len(changed) == 1, (label, changed)
        (before, after), = changed.values()
        assert after > before, (label, changed)


def test_shortcut_fine_tunes_differ_from_the_natural_one_only_in_their_start(store, monkeypatch):
    from conftest import small
    from grokbook import train
    from grokbook.core.newknowledge import dataset_for
    natural = train(small(), progress=False)
    fast = train(small(**{"train.grokfast_lamb": 2.0, "train.weight_decay": 0.5,
                          "data.phi": 3.0, "train.stop_at": 0.9}), progress=False)
    monkeypatch.setattr(S, "grokked_checkpoint", lambda run: run.checkpoints[-1])
    configs = S.transfer_configs({S.NATURAL: natural, "fast": fast}, "test")
    a, b = configs[S.NATURAL], configs["fast"]
    assert a.parent.startswith(natural.id) and b.parent.startswith(fast.id)
    assert a.replace(parent=b.parent) == b          # same data, recipe and schedule
    assert b.train.stop_at == 0 and b.train.grokfast_lamb == natural.config.train.grokfast_lamb
    assert dataset_for(a).digest() == dataset_for(b).digest()
    runs = dict(zip(configs, [train(c, progress=False) for c in configs.values()]))
    rows = S.transfer_rows(runs)
    assert list(rows["shortcut"]) == [S.NATURAL, "fast"]
    assert rows.loc[0, "transfer_vs_natural"] == "-"
    assert rows.loc[1, "transfer_vs_natural"] in (S.SAME_TRANSFER, S.DIFFERENT_TRANSFER,
                                                  "not measured")
    assert (rows["hop1_lo"] <= rows["hop1"]).all() and (rows["hop1"] <= rows["hop1_hi"]).all()


def test_transfer_comparison_reads_the_intervals(monkeypatch):
    from grokbook.analysis.definitions import wilson

    def summary(new, hop1, hop2, n=600):
        return {"new_atomic": {"best": new},
                **{p: {"final": a, "lo": wilson(a, n)[0], "hi": wilson(a, n)[1]}
                   for p, a in zip(S.TRANSFER_PROBES, (hop1, hop2))}}
    fake = {"nat": summary(1.0, 0.24, 0.01), "same": summary(1.0, 0.26, 0.02),
            "moved": summary(1.0, 0.45, 0.01), "unlearned": summary(0.5, 0.45, 0.01)}

    class R:
        def __init__(self, rid):
            self.id = rid
    monkeypatch.setattr(S.transfer, "transfer_table", lambda run, probes: run.id)
    monkeypatch.setattr(S.transfer, "probe_summary", lambda rid: fake[rid])
    rows = S.transfer_rows({k: R(k) for k in fake}).set_index("shortcut")["transfer_vs_natural"]
    assert list(rows) == ["-", S.SAME_TRANSFER, S.DIFFERENT_TRANSFER, "not measured"]
    # a run whose summary is already known (chapter 6's grokked start) is not read again
    read = []
    monkeypatch.setattr(S.transfer, "transfer_table", lambda run, probes: read.append(run.id)
                        or run.id)
    again = S.transfer_rows({k: R(k) for k in fake}, known={"nat": fake["nat"]})
    assert "nat" not in read and list(again["transfer_vs_natural"]) == list(rows)
