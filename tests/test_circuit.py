"""Claim 1's instrument: it must say "different" where the mechanisms differ and "same"
where they do not. Two hand-built models with known mechanisms serve as ground truth (one
resolves the bridge at the r1 position and reads it there, one looks the answer up from
the three tokens); real trained and random models check the same on the learned case."""
import pytest
import torch

from conftest import small
from grokbook.analysis import circuit as C
from grokbook.analysis.patching import tail_table
from grokbook.core.arch import build_model
from grokbook.core.data import build_dataset


class Oracle(torch.nn.Module):
    """States are one-hot tokens; ``hop1`` writes tail(h, r1) at the r1 position when
    ``bridge`` (else leaves it), ``hop2`` writes the answer at the r2 position: from the
    r1 position's entity (bridge) or from the three tokens' identities (lookup)."""

    stage_names = ["embed", "hop1", "hop2"]
    answer_offset = 0

    def __init__(self, ds, bridge: bool):
        super().__init__()
        self.tail = torch.as_tensor(tail_table(ds))
        self.E, self.V, self.bridge = ds.vocab.n_entities, len(ds.vocab), bridge

    def _tok(self, x, p):
        return x[:, p].argmax(-1)

    def _onehot(self, t):
        return torch.nn.functional.one_hot(t.clamp(min=0), self.V).float() * (t >= 0)[:, None]

    def _look(self, e, r_tok):
        ok = (e < self.E) & (r_tok >= self.E) & (r_tok < self.E + self.tail.shape[1])
        t = self.tail[e.clamp(max=self.E - 1), (r_tok - self.E).clamp(0, self.tail.shape[1] - 1)]
        return torch.where(ok, t, torch.full_like(t, -1))

    def _stage(self, s, x):
        x = x.clone()
        if s == 1 and self.bridge:
            x[:, 1] = self._onehot(self._look(self._tok(x, 0), self._tok(x, 1)))
        if s == 2:
            b = self._tok(x, 1) if self.bridge else self._look(self._tok(x, 0), self._tok(x, 1))
            x[:, 2] = self._onehot(self._look(b, self._tok(x, 2)))
        return x

    def run_from(self, stage, x):
        s = self.stage_names.index(stage) if isinstance(stage, str) else stage
        for k in range(s + 1, 3):
            x = self._stage(k, x)
        return x

    def run_with_cache(self, idx):
        x = torch.nn.functional.one_hot(idx, self.V).float()
        cache = {"embed": x}
        for k in (1, 2):
            x = self._stage(k, x)
            cache[self.stage_names[k]] = x
        return x, cache

    def unembed(self, x):
        return x


class RandomCausal(Oracle):
    """The oracles' architecture with random weights: each stage adds a random function of
    the positions up to its own (causal), so only the construction fixes cells."""

    def __init__(self, ds):
        super().__init__(ds, bridge=False)
        g = torch.Generator().manual_seed(0)
        self.w = [torch.randn(self.V, self.V, generator=g) / self.V ** 0.5 for _ in range(3)]

    def _stage(self, s, x):
        mixed = torch.cumsum(x, 1) @ self.w[s]
        return x + torch.tanh(mixed)


@pytest.fixture(scope="module")
def graph():
    cfg = small("dense")
    ds = build_dataset(cfg.data, cfg.seed)
    pool = C.trained_twohop(ds)
    q = C.sample_queries(ds.probes["train_inferred"], 300, 0)
    kept, cfs = C.pool_counterfactuals(ds, q, pool, 0)
    return cfg, ds, pool, kept, cfs


def test_counterfactuals_come_from_the_pool_differ_in_one_token_and_change_the_answer(graph):
    _, ds, pool, kept, cfs = graph
    assert len(kept["h"]) >= 30
    R = ds.vocab.n_relations
    allowed = set(((pool["h"] * R + pool["r1"]) * R + pool["r2"]).tolist())
    for swap, cf in cfs.items():
        keys = (cf["h"] * R + cf["r1"]) * R + cf["r2"]
        assert set(keys.tolist()) <= allowed
        assert (cf["t"] != kept["t"]).all()
        same = [k for k in ("h", "r1", "r2") if k != swap]
        assert all((cf[k] == kept[k]).all() for k in same) and (cf[swap] != kept[swap]).all()


def test_bridge_model_and_lookup_model_are_different_and_each_is_the_same_as_itself(graph):
    _, ds, pool, kept, cfs = graph
    bridge, lookup = (C.profile(Oracle(ds, b), ds, kept, cfs) for b in (True, False))
    mask = C.construction_mask(C.profile(RandomCausal(ds), ds, kept, cfs))
    assert 0 < mask.sum() < len(mask)
    assert bridge.clean_correct.all() and lookup.clean_correct.all()
    self_d = C.bootstrap(bridge, bridge, n=200, mask=mask)
    assert self_d["d"] == 0 and self_d["p95"] == 0
    far = C.bootstrap(bridge, lookup, n=200, mask=mask)
    assert far["lo"] > 0.2
    # the whole rule: a copy is "same"; the lookup model is "different" from the bridge one
    # (its own seed scale is 0, and the permuted control is far)
    negs = {"permuted": C.bootstrap(bridge, C.permuted(bridge, 0, mask), n=200, mask=mask)}
    assert C.path_rule(self_d, self_d, negs)[0] == C.SAME
    assert C.path_rule(far, self_d, negs)[0] == C.DIFFERENT


def test_fixed_cells_are_found_and_left_out(graph):
    _, ds, pool, kept, cfs = graph
    ref = C.profile(RandomCausal(ds), ds, kept, cfs)
    cells = {c: (i, w) for c, i, w in zip(ref.cells, ref.inert, ref.whole)}
    assert cells[("h", "embed", 1)] == (True, False)        # nothing changes there
    assert cells[("r1", "hop1", 0)] == (True, False)        # before the swapped token
    assert cells[("h", "embed", 0)] == (False, True)        # the whole counterfactual
    assert cells[("r2", "hop2", 2)] == (False, True)        # the answer site, last stage
    assert cells[("h", "hop1", 1)] == (False, False)        # the bridge site: informative
    # in the bridge model that site carries everything: whole by function, still counted
    bridge = C.profile(Oracle(ds, True), ds, kept, cfs)
    i = bridge.cells.index(("h", "hop1", 1))
    assert bridge.whole[i] and C.construction_mask(ref)[i]


def test_the_atomic_donor_moves_the_answer_to_the_donors_bridge(graph):
    _, ds, pool, kept, cfs = graph
    atoms = {k: v[~ds.atomic_ood] for k, v in ds.atomic.items()}
    b = C.bridge_interchange(Oracle(ds, True), ds, kept, atoms).set_index("stage")
    lk = C.bridge_interchange(Oracle(ds, False), ds, kept, atoms).set_index("stage")
    assert b.loc["hop1", "rate"] == 1.0          # reads tail(b', r2): routes the bridge
    assert lk.loc["hop1", "rate"] < 0.2          # the lookup never does
    assert C.middle_stage(Oracle.stage_names) == "hop1"
    lens = C.bridge_lens(Oracle(ds, True), ds, kept).set_index("stage")["bridge_top1"]
    assert lens["hop1"] == 1.0 and lens["embed"] == 0.0


def test_a_trained_model_is_far_from_a_random_one_and_equal_to_itself(graph, store):
    from grokbook.core.store import train
    cfg, ds, pool, kept, cfs = graph
    run = train(cfg, store=store, progress=False)
    model = run.load_model(run.checkpoints[-1])
    torch.manual_seed(3)
    rand = build_model(cfg, len(ds.vocab)).eval()
    trained, again, random = (C.profile(m, ds, kept, cfs) for m in (model, model, rand))
    mask = C.construction_mask(random)
    assert C.bootstrap(trained, again, n=200, mask=mask)["d"] == 0
    far = C.bootstrap(trained, random, n=200, mask=mask)
    assert far["lo"] > 0 and far["cells"] > 0


@pytest.mark.parametrize("d,negs,want", [
    (0.05, {"random": 0.5}, C.SAME),
    (0.40, {"random": 0.5}, C.DIFFERENT),
    (0.12, {"random": 0.5}, C.UNDETERMINED),     # interval straddles the scale
    (0.05, {"random": 0.08}, C.UNDETERMINED),    # a control as close as a seed
])
def test_path_rule_reaches_every_outcome(d, negs, want):
    boot = {"d": d, "lo": d - 0.05, "hi": d + 0.05, "p95": d + 0.04}
    scale = {"d": 0.06, "lo": 0.04, "hi": 0.09, "p95": 0.1}
    neg = {k: {"d": v, "lo": v - 0.03, "hi": v + 0.03, "p95": v} for k, v in negs.items()}
    outcome, reason = C.path_rule(boot, scale, neg)
    assert outcome == want and "seed-to-seed" in reason
    assert "own-drift" in C.path_rule(boot, scale, neg, scale_name="own-drift")[1]


def test_claim1_evidence_tables_charts_and_json(store, monkeypatch):
    """The measured branch of chapter 4 and ``grokbook claims`` on real (tiny) runs, with
    the checkpoint rules pointed at the first and last checkpoints (the test preset does
    not grok)."""
    import json

    from grokbook.chapters import paths
    alone = paths.claim1_runs("test", store=store)   # the subject never grokked: no controls
    assert list(alone) == ["subject"]
    none = paths.claim1_evidence(alone)
    assert not none["measured"] and "no grokked checkpoint" in none["reason"]
    first = lambda run: (run.checkpoints[1], "test rule")     # noqa: E731
    monkeypatch.setattr(paths, "before_checkpoint", first)
    monkeypatch.setattr(paths, "after_checkpoint", lambda run: run.checkpoints[-1])
    monkeypatch.setattr(paths, "later_checkpoint", lambda run, after: run.checkpoints[-1])
    monkeypatch.setattr(paths, "BEFORE_MAX_HELDOUT", 1.0)
    runs = paths.claim1_runs("test", store=store)
    assert set(runs) == {"subject", "lookup", f"seed_control_{paths.CONTROL_SEEDS[0]}"}
    from grokbook.core.store import train
    other_graph = train(small(seed=1), store=store)   # another data seed: another graph
    last = runs["subject"].checkpoints[-1]
    ev = paths.claim1_evidence(runs, n_queries=80, n_boot=50, others={
        "itself": (runs["subject"], last), "other graph": (other_graph, last),
        "never grokked": (other_graph, None)})
    assert ev["measured"] and ev["outcome"] in C.PATH_OUTCOMES and ev["reason"]
    itself = ev["others"]["itself"]      # "after" against its own weights: distance 0
    assert itself["d"]["d"] == 0 and itself["d"]["hi"] == 0 and itself["outcome"] in (
        C.SAME, C.UNDETERMINED)
    assert ev["others"]["other graph"]["reason"] == "another knowledge graph"
    assert ev["others"]["never grokked"]["outcome"] == C.UNDETERMINED
    assert ev["seed_controls_tried"][0]["init_seed"] == paths.CONTROL_SEEDS[0]
    t = paths.distance_table(ev).dropna(subset=["d"])
    assert len(t) >= 6 and (t["low"] <= t["d"]).all() and (t["d"] <= t["high"]).all()
    for chart in (paths.distance_chart, paths.rates_chart, paths.interchange_chart):
        chart(ev).to_dict()
    cps = paths.checkpoint_table(ev).set_index("checkpoint")
    assert list(cps.index) == ["before", "after", "later", "seed_control", "lookup"]
    assert cps.loc["before", "step"] == runs["subject"].checkpoints[1]
    assert ev["drift"]["d"] == 0 and ev["scale"]["from"] == "seed"   # after == later here
    assert {"max_gap", "at", "before", "after"} <= set(ev["lens_before_after"])
    per_stage, middle = paths.bridge_tables(ev)
    assert list(per_stage.index) == list(dict.fromkeys(ev["tables"]["lens"]["stage"]))
    assert {"before", "after"} <= set(per_stage.columns) and per_stage.max().max() <= 1
    assert middle.iloc[:, 0].to_dict() == ev["interchange_at_middle"]
    assert paths.describe_claim1(ev).startswith("trm, seed 0:")
    summary = paths.seed_summary([ev, none])
    assert list(summary["outcome"])[1] == "not measured" and summary["d"].iloc[0] >= 0
    json.dumps(paths.claim1_summary(ev))


def test_claim_1_reads_each_claim_seed_and_trains_the_lookup_only_after_a_control_grokked(
        store, monkeypatch):
    """Chapter 4's plan: the subject on each claim seed's graph (chapter 2's runs), seed
    controls on the same graph that end once they grok, the lookup on the first seed only.
    Without a grokked seed control no lookup is trained, and the reason names the seed
    controls, not the missing lookup. Over seeds the rule needs 3 decided seeds."""
    from grokbook.chapters import paths
    from grokbook.core.config import preset
    seeds = paths.claim_seeds("test")
    p = paths.plan("test")
    assert [n for n in p.names() if n.endswith("/subject")][:len(seeds)] == [
        f"04/trm/seed {s}/subject" for s in seeds]
    assert [n for n in p.names() if n.endswith("/lookup")] == [
        f"04/trm/seed {seeds[0]}/lookup", f"04/dense/seed {seeds[0]}/lookup"]
    cfgs = paths.claim1_configs("test", seed=seeds[1])
    assert cfgs["subject"] == preset("test", seed=seeds[1])
    ctrl = cfgs[f"seed_control_{paths.CONTROL_SEEDS[0]}"]
    assert ctrl.train.init_seed == paths.CONTROL_SEEDS[0] and ctrl.train.stop_at == 0.9
    assert cfgs["lookup"].data.shuffle_inferred and cfgs["lookup"].train.stop_after_fitted == 2
    # the subject "groks", no seed control does: no lookup trained, reason says why
    subject_id = paths.claim1_runs("test", store=store)["subject"].id
    monkeypatch.setattr(paths, "after_checkpoint",
                        lambda run: run.checkpoints[-1] if run.id == subject_id else None)
    runs = paths.claim1_runs("test", store=store)
    assert "lookup" not in runs and set(runs) == {"subject", "later", *(
        f"seed_control_{s}" for s in paths.CONTROL_SEEDS)}
    ev = paths.claim1_evidence(runs)
    assert not ev["measured"] and "no seed control grokked" in ev["reason"]
    assert "lookup" not in ev["reason"]
    v, why, _ = paths.claim1_over_seeds([ev])
    assert v == "not measured" and "needs 3" in why


def test_claim_1_over_seeds_reaches_every_class():
    from grokbook.chapters import paths

    def ev(seed, outcome):
        return {"seed": seed, "measured": outcome is not None, "outcome": outcome or
                C.UNDETERMINED, "reason": "r"}
    S, D, U = C.SAME, C.DIFFERENT, C.UNDETERMINED
    assert paths.claim1_over_seeds([ev(1, S), ev(2, S), ev(3, U)])[0] == "replicates"
    assert paths.claim1_over_seeds([ev(1, D), ev(2, D), ev(3, D)])[0] == "does not replicate"
    assert paths.claim1_over_seeds([ev(1, S), ev(2, D), ev(3, S)])[0] == "partly"
    assert paths.claim1_over_seeds([ev(1, U), ev(2, U), ev(3, S)])[0] == "not measured"
    assert paths.claim1_over_seeds([ev(1, S), ev(2, S), ev(3, None)])[0] == "not measured"


def test_the_run_carried_on_to_twice_its_grokked_step_retraces_the_subject(store):
    """Claim 1's drift scale where the subject's budget ends before 2x its grokked step:
    the same config with twice the budget, stopping at 2x its grokked step. Its schedule
    is constant after warmup, so it holds the subject's checkpoints exactly; one that does
    not (another seed) is refused."""
    from grokbook import train
    from grokbook.chapters import paths
    cfgs = paths.claim1_configs("test")
    assert cfgs["later"].train.max_steps == 2 * cfgs["subject"].train.max_steps
    assert cfgs["later"].replace(**{"train.max_steps": cfgs["subject"].train.max_steps,
                                    "train.stop_after_grokked":
                                        cfgs["subject"].train.stop_after_grokked}) \
        == cfgs["subject"]
    subject = train(cfgs["subject"], store=store)
    long = train(cfgs["later"].replace(**{"train.stop_after_grokked": 0.0}), store=store)
    assert long.checkpoints[-1] > subject.checkpoints[-1]
    assert all(paths._retraces(long, subject, s) for s in subject.checkpoints)
    other = train(cfgs["subject"].replace(seed=cfgs["subject"].seed + 1), store=store)
    assert not paths._retraces(other, subject, subject.checkpoints[-1])


def test_claim_1_reads_drift_from_the_long_run_only_where_it_retraces(store, monkeypatch):
    """Where the subject's run ends before 2x its grokked step, claim 1's "later" comes
    from the long run; a long run that does not retrace the subject leaves the seed not
    measured with that reason, the one that does is accepted (the control)."""
    from grokbook import train
    from grokbook.chapters import paths
    cfgs = paths.claim1_configs("test")
    subject = train(cfgs["subject"], store=store)
    long = train(cfgs["later"].replace(**{"train.stop_after_grokked": 0.0}), store=store)
    other = train(cfgs["later"].replace(**{"train.stop_after_grokked": 0.0,
                                           "seed": cfgs["subject"].seed + 1}), store=store)
    mid = subject.checkpoints[len(subject.checkpoints) // 2]
    monkeypatch.setattr(paths, "after_checkpoint", lambda run: mid)
    monkeypatch.setattr(paths, "later_checkpoint",     # the subject's run is too short
                        lambda run, after: None if run.id == subject.id else run.checkpoints[-1])
    why = lambda cont: paths.claim1_evidence({"subject": subject, "later": cont})  # noqa
    bad, good = why(other), why(long)
    assert not bad["measured"] and "does not retrace the subject run" in bad["reason"]
    assert "does not retrace" not in good["reason"]
    assert good["later"]["step"] == long.checkpoints[-1] > subject.checkpoints[-1]
