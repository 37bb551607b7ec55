"""Chapter 7's shortcuts: tuning, speed-ups over seeds against the natural run, in words."""
import json

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


def _fake(rid, grok_at, budget=10_000, flops=1e6, wall=100.0, held=0.1):
    r = FakeRun(rid, grok_at, budget, flops)
    r.info["wall_seconds"], r.steps = wall, budget if grok_at is None else grok_at
    r._acc["test_inferred_iid"] = [0.95 if grok_at is not None and s >= grok_at else held
                                   for s in r._acc.index]
    return r


def test_seed_rows_give_speedups_over_the_same_seeds_natural_run():
    by_seed = {1: {S.NATURAL: _fake("n", 9000, wall=90.0),
                   "Muon": _fake("m", 3000, flops=1.5e6, wall=60.0),
                   "Grokfast": _fake("g", None, held=0.5)}}
    rows = S.seed_rows(by_seed).set_index("shortcut")
    assert rows.loc["Muon", "speedup"] == 3.0 and not rows.loc["Muon", "censored"]
    assert rows.loc["Muon", "flops_speedup"] == 9000 / (3000 * 1.5)
    assert rows.loc["Muon", "seconds_speedup"] == 90.0 / 60.0     # each run's own rate
    assert rows.loc["Grokfast", "speedup"] == 0.9 and rows.loc["Grokfast", "censored"]
    assert rows.loc["Muon", "clean_wait"] and not rows.loc["Grokfast", "clean_wait"]
    assert pd.isna(rows.loc[S.NATURAL, "speedup"])
    none = S.seed_rows({1: {S.NATURAL: _fake("n", None), "Muon": _fake("m", 3000)}})
    assert none.set_index("shortcut")["speedup"].isna().all()   # no grokked natural run


def _table(muon=(3000, 2500, 2000), path=("same", "same", "same"), nat=9000):
    by_seed = {s: {S.NATURAL: _fake("n", nat), "Muon": _fake("m", g),
                   "Grokfast": _fake("g", 8000)} for s, g in zip((1, 2, 3), muon)}
    ev = {s: {"others": {"Muon": {"outcome": p}, "Grokfast": {"outcome": "different"}}}
          for s, p in zip((1, 2, 3), path)}
    return S.wait_cut_table(S.seed_rows(by_seed), ev)


def test_wait_cut_table_reads_speedups_paths_and_the_cut_rule():
    t = _table().set_index("shortcut")
    assert list(t.index) == ["Grokfast", "Muon"]          # in SHORTCUTS' order
    m = t.loc["Muon"]
    assert m["speedup"] == 3.6 and m["speedup_lo"] <= 3.6 <= m["speedup_hi"]
    assert m["path"] == S.SAME_CIRCUIT and m["cuts"] and m["same_share"] == 1.0
    g = t.loc["Grokfast"]
    assert g["path"] == S.OTHER_CIRCUIT and not g["cuts"]   # 1.125x: not a cut
    words = S.describe(t.reset_index(), missing=["phi"])
    assert "Muon (-): 3.60x fewer steps" in words and "over 3 seeds" in words
    assert "cut the wait (median speed-up >= 2x, interval above 1x): Muon." in words
    assert "Not tuned at this preset, so not trained: phi." in words
    mixed = _table(path=("same", "different", "different")).set_index("shortcut")
    assert mixed.loc["Muon", "path"] == S.MIXED
    few = _table(path=("same", "undetermined", "-")).set_index("shortcut")
    assert few.loc["Muon", "path"] == "not measured"      # one seed decided
    slow = _table(muon=(9000, 8000, 9500)).set_index("shortcut")
    assert not slow.loc["Muon", "cuts"]


def test_tuning_takes_the_fewest_median_steps_and_ties_go_to_the_first():
    rows = [dict(shortcut="Muon", value=v, seed=s, steps=st) for v, s, st in (
        (0.01, 1, 4000), (0.01, 2, 6000), (0.02, 1, 3000), (0.02, 2, 7000))]
    rows += [dict(shortcut="Grokfast", value=v, seed=1, steps=10_000) for v in (2.0, 5.0)]
    assert S.choose(rows) == {"Grokfast": 2.0, "Muon": 0.01}   # medians 5000 vs 5000: first
    rows[3]["steps"] = 6500
    assert S.choose(rows)["Muon"] == 0.02


def test_a_tuning_is_read_only_under_its_own_declaration():
    summary = {"declaration": S.declaration("test"), "chosen": {"Muon": 0.01, "phi": 4.6}}
    assert S.tuned("test", summary) == {"Muon": 0.01, "phi": 4.6}
    stale = json.loads(json.dumps(summary))
    stale["declaration"]["shortcuts"]["Muon"]["grid"] = [0.05]
    assert S.tuned("test", stale) == {"phi": 4.6}
    assert "Muon" in S.not_tuned("test", stale)
    stale["declaration"]["seeds"] = [7]
    assert S.tuned("test", stale) == {}


@pytest.mark.parametrize("name", ["test", "cpu"])
def test_each_shortcut_changes_its_knob_and_stops_at_grokking(name):
    base = preset(name)
    assert not set(S.tuning_seeds(name)) & set(S.paths.claim_seeds(name))
    for sc in S.SHORTCUTS:
        values = sc.values(base)
        assert values, sc.label
        for v in values:
            cfg = sc.config(base, v, seed=5)
            assert cfg.seed == 5 and cfg.train.stop_at == S.GROKKED_AT
            changed = {k for sec in ("data", "train", "model")
                       for k in vars(getattr(base, sec))
                       if getattr(getattr(base, sec), k) != getattr(getattr(cfg, sec), k)}
            allowed = {sc.knob.split(".")[1], *(k.split(".")[1] for k, _ in sc.fixed),
                       "stop_at", "stop_after_grokked"}
            assert sc.knob.split(".")[1] in changed or sc.fixed, (sc.label, v)
            assert changed <= allowed, (sc.label, changed)


def test_the_chapter_plan_trains_tuned_shortcuts_on_every_claim_seed(monkeypatch):
    monkeypatch.setattr(S, "tuned", lambda p, summary=None: {"Muon": 0.01, "phi": 4.6})
    p = S.plan("test")
    seeds = S.paths.claim_seeds("test")
    cuts = [e for e in p if e.role == "shortcut"]
    assert {(e.labels["seed"], e.labels["shortcut"]) for e in cuts} == {
        (s, k) for s in seeds for k in ("Muon", "phi")}
    nat = {e.labels["seed"]: e.config for e in p if e.role == "natural"}
    assert all(nat[s] == preset("test").replace(seed=s) for s in seeds)   # chapter 2's runs
    tunes = [e for e in p if e.role == "fine-tune"]
    assert {e.labels["seed"] for e in tunes} == {seeds[0]} and len(tunes) == 3
    muon = next(e.config for e in cuts if e.labels["shortcut"] == "Muon")
    assert muon.train.optimizer == "muon" and muon.train.muon_lr == 0.01


def test_tune_command_writes_a_summary_and_refuses_claim_seeds(tmp_path, monkeypatch, capsys):
    from grokbook.book.cli import main
    monkeypatch.setattr(S, "SHORTCUTS", S.SHORTCUTS[4:6])     # Grokfast and Muon
    out = tmp_path / "tuning.json"
    real = S.resolve

    def interrupted(plan, store, workers=None, report=None):   # stopped after one run
        def hear(o, n, total):
            report(o, n, total)
            if o.status == "trained":
                raise KeyboardInterrupt
        return real(plan, store, workers=workers, report=hear)

    monkeypatch.setattr(S, "resolve", interrupted)
    with pytest.raises(KeyboardInterrupt):
        S.tune("test", store=tmp_path / "s", out=out, log=lambda m: None)
    part = json.loads(out.read_text())
    assert len(part["rows"]) == 1 and len(part["pending"]) == 3 and part["chosen"] == {}
    assert S.tuned("test", part) == {}                 # an unfinished tuning chooses nothing
    monkeypatch.setattr(S, "resolve", real)
    assert main(["shortcuts", "--tune", "--preset", "test", "--store", str(tmp_path / "s"),
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(out.read_text())
    assert set(summary["chosen"]) == {"Grokfast", "Muon"} and summary["commit"]
    assert len(summary["rows"]) == 4 and all(r["run"] for r in summary["rows"])
    assert summary["pending"] == [] and part["rows"][0] in summary["rows"]
    assert S.tuned("test", summary) == summary["chosen"]
    monkeypatch.setitem(S.settings.PRESETS["test"], "shortcut_tuning_seeds", (0,))
    assert main(["shortcuts", "--tune", "--preset", "test", "--store", str(tmp_path / "s"),
                 "--out", str(out)]) != 0
    assert "shortcut_tuning_seeds" in capsys.readouterr().err


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
