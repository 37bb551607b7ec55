"""The subject's declared search, its pass rule and its confirmation on fresh seeds."""
import json

import pandas as pd
import pytest
import torch

from grokbook import preset
from grokbook.chapters import subject as S


def acc(rows):
    """An accuracy table: (step, train_inferred, test_inferred_iid) rows."""
    return pd.DataFrame(rows, columns=["step", "train_inferred", "test_inferred_iid"]
                        ).set_index("step")


@pytest.mark.parametrize("rows,outcome", [
    ([(100, 0.5, 0.0), (200, 0.995, 0.1), (700, 1.0, 0.95)], S.PASSED),
    ([(100, 0.5, 0.0), (200, 0.995, 0.3), (700, 1.0, 0.95)], S.NO_WAIT),
    ([(100, 0.5, 0.0), (200, 0.995, 0.1), (400, 1.0, 0.95)], S.TOO_SOON),
    ([(100, 0.5, 0.0), (200, 0.995, 0.1), (700, 1.0, 0.6)], S.NOT_GROKKED),
    ([(100, 0.5, 0.0), (700, 0.9, 0.1)], S.NEVER_MEMORIZED),
])
def test_the_pass_rule_tells_every_outcome_apart(rows, outcome):
    o = S.outcome(acc(rows), budget=1000)
    assert o["outcome"] == outcome and o["passed"] == (outcome == S.PASSED)
    # a grokked step past the budget is not within it
    if outcome == S.PASSED:
        assert S.outcome(acc(rows), budget=600)["outcome"] == S.NOT_GROKKED


def test_the_search_is_declared_before_it_runs():
    cpu = S.SEARCHES["cpu"]
    points = cpu.points()
    assert len(points) == len({json.dumps(p, sort_keys=True) for p in points})
    knobs = set(cpu.knobs)
    assert {"arch", "model.d_model", "data.phi", "train.weight_decay",
            "model.init_scale"} <= knobs
    assert {p["arch"] for p in points} == {"trm", "looped"}
    assert {p["model.d_model"] for p in points} == {64, 128}
    phis = {p["data.phi"] for p in points}
    assert min(phis) <= 4.5 and max(phis) >= 7.0
    assert len({p["model.init_scale"] for p in points}) >= 3
    # search and confirmation seeds are disjoint, and the confirmation has 8 per round
    assert not set(S.search_seeds("cpu")) & set(S.confirmation_seeds("cpu"))
    assert all(len(r) == 8 for r in S.CONFIRMATION["cpu"])
    # every point's budget is the same time on its shape's measured speed
    for p in points:
        cfg = cpu.config(p, 101)
        assert cfg.train.max_steps / cpu.rate(p) <= S.BUDGET_SECONDS
        assert cfg.train.stop_at == S.GROKKED_AT
    # the base is written out, not read from the preset the winner becomes
    assert cpu.config(points[0], 101).data.n_entities == S._CPU_BASE["data.n_entities"]


def test_the_search_runs_end_to_end_and_writes_its_summary(store, tmp_path):
    out = tmp_path / "search.json"
    summary = S.search("test", store=store, out=out, log=lambda m: None)
    spec = S.SEARCHES["test"]
    on_disk = json.loads(out.read_text())
    assert on_disk["chosen"] == summary["chosen"] and len(summary["chosen"]) == 2
    assert on_disk["declaration"]["rule"] == S.RULE_TEXT
    assert {"commit", "started", "finished", "device"} <= set(on_disk)
    first, second = [[r for r in summary["rows"] if r["stage"] == i] for i in (1, 2)]
    assert len(first) == len(spec.points()) * len(spec.stages[0][0])
    assert len(second) == spec.stages[0][1] * len(spec.stages[1][0])
    for r in summary["rows"]:
        assert r["outcome"] in S.OUTCOMES and r["run"]
        assert {"memorized_step", "grokked_step", "heldout_at_memorized", "seed",
                "predicted_cpu_seconds"} <= set(r)
    kept = {r["point"] for r in second}
    assert kept == {t["point"] for t in summary["stages"][0]["ranking"][:spec.stages[0][1]]}
    # the search as one plan (its later stage conditional on the ranking) names the same runs
    from grokbook.core.plan import SKIPPED, STORED, resolve
    whole = resolve(S.search_plan("test"), store, train=False)
    stored = {o.run_id for o in whole.values() if o.status == STORED}
    assert stored == {r["run"] for r in summary["rows"]}
    assert {o.status for o in whole.values()} == {STORED, SKIPPED}
    n = len(list((store / "runs").iterdir()))
    again = S.search("test", store=store, out=out, log=lambda m: None)   # read, not retrained
    assert len(list((store / "runs").iterdir())) == n and again["chosen"] == summary["chosen"]


def test_a_larger_initial_scale_multiplies_the_weight_matrices_only():
    from grokbook.core.arch import build_model
    torch.manual_seed(0)
    one = build_model(preset("test"), 80)
    torch.manual_seed(0)
    three = build_model(preset("test", **{"model.init_scale": 3.0}), 80)
    for (name, a), (_, b) in zip(one.named_parameters(), three.named_parameters()):
        expect = 3.0 if a.dim() >= 2 else 1.0
        assert torch.allclose(b, a * expect), name
    assert preset("test").hash() == preset("test", **{"model.init_scale": 1.0}).hash()


def test_a_run_can_stop_at_a_multiple_of_its_grokked_step(store, monkeypatch):
    """``train.stop_after_grokked``: the clock is the first evaluation where held-out ID
    reaches its threshold (lowered here so the test preset crosses it at once)."""
    from grokbook.core import train as T
    from grokbook.core.store import train
    monkeypatch.setattr(T, "CLOCKS", (T.CLOCKS[0], ("stop_after_grokked",
                                                     "test_inferred_iid", 0.0)))
    cfg = preset("test", **{"train.stop_after_grokked": 2.0, "train.max_steps": 200,
                            "train.eval_every": 25})
    run = train(cfg, store=store, progress=False)
    assert run.steps == 50 and run.checkpoints[-1] == 50    # clock at 25: ends at 2 x 25


def test_confirmation_reads_rounds_and_tries_the_runner_up_only_after_a_failure(store):
    with pytest.raises(S.ConfigError, match="grokbook subject --preset test"):
        S.confirmation("test", store=store, summary={}, train=False)   # nothing stored yet
    c = S.confirmation("test", store=store, summary={})
    read = S.confirmation("test", store=store, summary={}, train=False)
    assert read["per_seed"] == c["per_seed"] and read["pending"] == []
    assert [r["seed"] for r in c["per_seed"]] == list(S.CONFIRMATION["test"][0])
    assert len(c["rounds"]) == 1 and c["of"] == 2
    assert {"memorized_step", "grokked_step", "heldout_at_memorized", "wall_seconds",
            "passed"} <= set(c["per_seed"][0])
    words = S.describe_confirmation(c)
    assert f"{c['passed']} pass" in words
    if not c["confirmed"]:        # the test preset does not grok: the runner-up is tried
        up = {"arch": "trm", "data.phi": 3.0, "model.init_scale": 2.0}
        c2 = S.confirmation("test", store=store, summary={"chosen": [up, up]})
        assert len(c2["rounds"]) == 2 and c2["rounds"][1]["recipe"]["init_scale"] == 2.0
        assert c2["rounds"][1]["seeds"] == list(S.CONFIRMATION["test"][1])
        best = c2["rounds"][c2["chosen_round"]]       # the book keeps the better round
        assert c2["recipe"] == best["recipe"] and c2["passed"] == best["passed"] == max(
            r["passed"] for r in c2["rounds"])
        assert "runner-up" in S.describe_confirmation(c2)
        # the refinement's winner is the third round, tried only after both failed
        ref = {"arch": "trm", "data.phi": 3.5, "model.init_scale": 1.5}
        c3 = S.confirmation("test", store=store, summary={"chosen": [up, up]},
                            refined={"chosen": [ref]})
        assert [r["seeds"] for r in c3["rounds"]] == [list(x) for x in
                                                      S.CONFIRMATION["test"][:4]]
        assert c3["rounds"][2]["recipe"]["phi"] == 3.5 and c3["rounds"][:2] == c2["rounds"]
        assert "the refinement's winner" in S.describe_confirmation(c3)
    else:
        up = {"arch": "trm", "data.phi": 3.0, "model.init_scale": 2.0}
    later = S.confirmation("test", store=store, summary={"chosen": [up, {**up, "data.phi": 3.5}]},
                           train=False)       # a runner-up nobody trained: listed, not run
    if not later["rounds"][0]["confirmed"]:
        assert len(later["pending"]) == 2 and "Not in the store yet" in \
            S.describe_confirmation(later)


def test_subject_command_prints_the_confirmation(store, capsys, tmp_path):
    from grokbook.book.cli import main
    path = tmp_path / "confirmation.json"
    assert main(["subject", "--preset", "test", "--json", "--store", str(store),
                 "--out", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    written = json.loads(path.read_text())
    assert written["per_seed"] == out["per_seed"] and written["commit"]
    assert {"recipe", "search_seeds", "confirmation_seeds", "per_seed", "passed", "of"} <= set(out)
    assert not set(out["search_seeds"]) & set(out["confirmation_seeds"])
    assert main(["subject", "--preset", "gpu"]) == 2
    assert "preset" in capsys.readouterr().err


def test_the_cpu_preset_differs_from_the_search_winner_only_where_the_refinement_moved():
    """The cpu preset's subject is the search's winner except in the knobs the refinement
    varied (the kept recipe is the refinement's winner; the schedule is the book's)."""
    summary = S.read_summary("cpu")
    moved = S.differences("cpu", summary)
    assert set(moved) <= {k for k in S.REFINEMENTS["cpu"].knobs if k != "arch"}
    won = S.read_summary("cpu", refine=True)["chosen"][0]
    assert all(moved[k][0] == won[k] for k in moved)
    assert S.differences("cpu", {**(summary or {}), "chosen": []}) == {}
    other = {"arch": "looped", "model.d_model": 64, "data.phi": 7.2,
             "train.weight_decay": 1.0, "model.init_scale": 1.0}
    moved = S.differences("cpu", {"chosen": [other]})
    assert {"model.arch", "model.n_loops", "data.phi"} <= set(moved)


def test_the_book_keeps_the_confirmed_round_else_the_one_that_passed_most():
    r = lambda passed, ok=False: {"passed": passed, "of": 8, "confirmed": ok}
    assert S.chosen_round([r(3), r(0)]) == 0          # neither confirmed: the better
    assert S.chosen_round([r(2), r(4)]) == 1
    assert S.chosen_round([r(3), r(3)]) == 0          # a tie: the search's winner
    assert S.chosen_round([r(5), r(6, True)]) == 1
    assert S.chosen_round([r(2), {"passed": 1, "of": 2, "confirmed": False}]) == 1  # a rate
    part = {"passed": 2, "of": 2, "confirmed": False, "complete": False}
    assert S.chosen_round([r(1), part]) == 0          # a half-stored round is not chosen


def test_the_cpu_preset_is_the_confirmation_s_best_recipe():
    """The committed confirmation's chosen recipe (confirmed, or the best when none was)
    is the cpu preset's subject."""
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "results" / "subject_confirmation_cpu.json"
    c = json.loads(path.read_text())
    assert c["rounds"][c["chosen_round"]]["recipe"] == c["recipe"] == S.recipe_of(preset("cpu"))
    assert set(c["confirmation_seeds"]).isdisjoint(c["search_seeds"])


def test_history_keeps_the_summary_s_record_and_adds_later_entries_once():
    old = S.DECLARATION_HISTORY["cpu"][0]
    got = S.history({"history": ["an entry only the summary has", old]}, "cpu")
    assert got[:2] == ["an entry only the summary has", old]
    assert got.count(old) == 1 and set(S.DECLARATION_HISTORY["cpu"]) <= set(got)
    assert S.history(None, "cpu") == [] and S.history({"history": []}, "test") == []


def test_a_partial_read_does_not_replace_the_committed_confirmation(monkeypatch, tmp_path,
                                                                    capsys):
    from grokbook.book.cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    got = {"pending": ["02/subject round 2/seed 51"], "rounds": []}
    monkeypatch.setattr(S, "confirmation", lambda *a, **k: got)
    monkeypatch.setattr(S, "describe_confirmation", lambda c: "described")
    assert main(["subject", "--preset", "test", "--no-train"]) == 0
    assert not (tmp_path / "results" / "subject_confirmation_test.json").exists()
    assert "summary was not written" in capsys.readouterr().err
    assert main(["subject", "--preset", "test", "--no-train", "--search"]) == 2
    assert "--no-train" in capsys.readouterr().err


def test_the_refinement_is_declared_near_the_winner_on_seeds_of_its_own():
    ref, win = S.REFINEMENTS["cpu"], S.read_summary("cpu")["chosen"][0]
    points = ref.points()
    assert win in points and len(points) >= 6
    assert {p["arch"] for p in points} == {win["arch"]}
    assert {p["model.d_model"] for p in points} == {win["model.d_model"]}
    seeds = [s for st in ref.stages for s in st[0]]
    searched = [s for st in S.SEARCHES["cpu"].stages for s in st[0]]
    assert not set(seeds) & set(searched)
    assert not set(S.search_seeds("cpu")) & set(S.confirmation_seeds("cpu"))
    assert len(S.CONFIRMATION["cpu"]) == 5 and all(len(r) == 8 for r in S.CONFIRMATION["cpu"])
    assert all(cfg.train.max_steps == ref.budget_steps(p) for p, cfg in
               ((p, ref.config(p, 105)) for p in points))
    # ties on seeds passed go to the deeper wait, then the faster grok
    row = lambda point, held, secs, passed=True: {
        "point": point, "arch": "trm", "model.d_model": 128, "data.phi": 6.3,
        "train.weight_decay": 0.4, "model.init_scale": 2.0, "passed": passed,
        "heldout_at_memorized": held, "predicted_cpu_seconds": secs, "grokked_step": 1}
    got = S.rank([row("a", 0.19, 100), row("b", 0.05, 500), row("c", 0.01, 50, False)], ref)
    assert [t["point"] for t in got] == ["b", "a", "c"]
    assert [t["point"] for t in S.rank([row("a", 0.19, 100), row("b", 0.05, 500)],
                                       S.SEARCHES["cpu"])] == ["a", "b"]
    with pytest.raises(S.ConfigError, match="preset.*declared: cpu, test"):
        S.search_plan("nope", refine=True)


def test_a_later_round_runs_only_when_no_earlier_round_confirmed(monkeypatch):
    monkeypatch.setattr(S, "seed_rows", lambda runs: [{"passed": r} for r in runs])
    runs = {"a1": True, "a2": True, "b1": False, "b2": None}
    assert not S._none_confirmed(runs, (("a1", "a2"),))          # round 1 confirmed
    assert not S._none_confirmed(runs, (("b1", "b2"), ("a1", "a2")))
    assert S._none_confirmed(runs, (("b1", "b2"),))              # 0 of 1 stored passed
    assert S._none_confirmed(runs, ((), ("b2",)))                # nothing stored: none
    p = S.confirmation_plan("test", summary={"chosen": [{"arch": "trm"}] * 2},
                            refined={"chosen": [{"arch": "trm", "data.phi": 3.5}]})
    third = [e for e in p if e.labels["round"] == 3]
    assert len(third) == 2 and all(len(e.after) == 4 for e in third)


def test_the_book_trains_the_round_the_committed_confirmation_keeps():
    from pathlib import Path
    from grokbook.chapters import recipe, settings
    path = Path(__file__).resolve().parents[1] / "results" / "subject_confirmation_cpu.json"
    c = json.loads(path.read_text())
    assert settings.of("cpu")["subject_round"] == c["chosen_round"]
    seeds = settings.subject_seeds("cpu")
    assert seeds == c["confirmation_seeds"] == list(S.CONFIRMATION["cpu"][c["chosen_round"]])
    planned = [e for e in recipe.plan("cpu") if e.role == "subject"]
    assert [e.config.seed for e in planned] == seeds
    assert all(e.config == preset("cpu").replace(seed=e.config.seed) for e in planned)


def test_a_broken_results_file_is_a_clear_error_naming_it(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "subject_confirmation_cpu.json").write_text("{not json")
    (tmp_path / "results" / "subject_refine_cpu.json").write_text("[1,")
    with pytest.raises(S.ConfigError, match="subject_confirmation_cpu.json.*grokbook subject"):
        S.confirmation_record("cpu", root=tmp_path)
    with pytest.raises(S.ConfigError, match="subject_refine_cpu.json.*--refine"):
        S.read_summary("cpu", root=tmp_path, refine=True)
    assert S.read_summary("cpu", root=tmp_path) is None        # absent: None, not an error


def test_one_round_trains_alone_beside_the_failed_rounds_of_the_record(store, tmp_path,
                                                                         capsys):
    """``grokbook subject --round N`` trains round N only, and only after the record's
    earlier rounds (on the runs the plan declares for them) all failed; everything is
    checked before anything trains; the earlier rounds keep their own stamps."""
    from grokbook.core.store import run_id
    up = {"arch": "trm", "data.phi": 3.0, "model.init_scale": 2.0}
    summary, refined = {"chosen": [up, up]}, {"chosen": [{**up, "data.phi": 3.5}]}
    plan = S.confirmation_plan("test", summary, refined)

    def failed(i, **over):
        ids = [run_id(e.config) for e in plan if e.labels["round"] == i]
        return {"passed": 0, "of": 2, "complete": True, "confirmed": False,
                "recipe": {"phi": 4.0}, "seeds": list(S.CONFIRMATION["test"][i - 1]),
                "per_seed": [{"run": x} for x in ids], **over}

    own = {"commit": "old", "read": "2025-01-01"}
    record = {"preset": "test", "rounds": [failed(1, **own), failed(2)], "search_seeds": [],
              "commit": "abc", "read": "2026-01-01", "source": "the committed record"}
    go = lambda rec, n=3: S.confirm_round("test", n, rec, store=store, summary=summary,  # noqa
                                          refined=refined)
    # refused before anything trains: the store stays empty
    with pytest.raises(S.ConfigError, match="round 1 already confirmed"):
        go({**record, "rounds": [failed(1, confirmed=True), failed(2)]})
    with pytest.raises(S.ConfigError, match="does not hold rounds 1-2 complete"):
        go({"rounds": [failed(1)]})
    with pytest.raises(S.ConfigError, match="does not hold round 1 complete"):
        go(None, 2)
    with pytest.raises(S.ConfigError, match="round 2 of .* is not on the runs"):
        go({**record, "rounds": [failed(1), failed(1)]})
    with pytest.raises(S.ConfigError, match="already holds rounds after round 3"):
        go({**record, "rounds": [failed(1), failed(2), failed(3), failed(4)]})
    with pytest.raises(S.ConfigError, match="declares rounds 1, 2, 3, 4; got 7"):
        go(record, 7)
    assert not (store / "runs").exists() or not list((store / "runs").iterdir())
    out = go(record)
    assert [r["seeds"] for r in out["rounds"]] == [list(x) for x in S.CONFIRMATION["test"][:3]]
    assert out["rounds"][0] == failed(1, **own)                # its own stamp kept
    assert out["rounds"][1] == {**failed(2), "commit": "abc", "read": "2026-01-01"}
    third = out["rounds"][2]
    assert third["recipe"]["phi"] == 3.5 and third["commit"] and third["read"]
    assert [r["run"] for r in third["per_seed"]] == [
        run_id(e.config) for e in plan if e.labels["round"] == 3]
    assert out["search_seeds"] == S.search_seeds("test") and "source" not in out
    if third["passed"]:                 # the only round with a seed passed is kept
        assert out["chosen_round"] == 2 and out["per_seed"] == third["per_seed"]
    else:                               # none passed: the earliest is kept
        assert out["chosen_round"] == 0 and out["recipe"] == {"phi": 4.0}
    assert len(list((store / "runs").iterdir())) == 2          # round 3's two runs only
    from grokbook.book.cli import main
    for extra in (["--no-train"], ["--search"], ["--refine"]):
        assert main(["subject", "--preset", "test", "--round", "3", *extra]) == 2
        assert "--round" in capsys.readouterr().err


def test_the_fourth_round_s_budget_is_the_rate_its_recipe_s_own_runs_measured():
    """The fourth round's rate is the median steps/s of the refinement's stage-2 runs (the
    committed record), so its step budget is the pass rule's 600 s at that rate; the recipe
    is the refinement's winner and the seeds are fresh."""
    import statistics
    refined = S.read_summary("cpu", refine=True)
    rates = [r["steps"] / r["wall_seconds"] for r in refined["rows"] if r["stage"] == 2]
    assert len(rates) == 6
    assert S.REMEASURED["cpu"][("trm", 128)] == pytest.approx(statistics.median(rates), abs=0.05)
    rounds = S.round_configs("cpu", S.read_summary("cpu"), refined)
    assert len(rounds) == 4
    third, fourth = rounds[2][0], rounds[3][0]
    assert fourth.train.max_steps == int(S.BUDGET_SECONDS * 17.9 // 100) * 100 == 10700
    assert fourth.replace(**{"train.max_steps": third.train.max_steps}, seed=third.seed) \
        == third
    assert not set(S.CONFIRMATION["cpu"][3]) & (set(S.search_seeds("cpu"))
                                                | set(S.confirmation_seeds("cpu")[:24]))
    # declaring it moved no earlier round: their runs are the committed record's
    from grokbook.core.store import run_id
    record = S.confirmation_record("cpu")
    for i, r in enumerate(record["rounds"][:3]):
        assert [run_id(c) for c in rounds[i]] == [x["run"] for x in r["per_seed"]]


def test_the_confirmation_reads_confirmed_not_confirmed_or_not_measured():
    """Each class of the confirmation's verdict from records that differ only in what their
    seeds showed: 6 of 8 passed confirms, 5 of 8 does not (the book carries the rate and
    keeps the best round), and no record at all is "none recorded", never a failure."""
    def rnd(passed, max_steps=6500):
        rows = [{"seed": s, "outcome": S.PASSED if s < passed else S.NOT_GROKKED,
                 "passed": s < passed} for s in range(8)]
        return {"recipe": {"arch": "trm", "d_model": 128, "phi": 5.4, "weight_decay": 0.4,
                           "init_scale": 2.0, "n_entities": 100, "max_steps": max_steps},
                "seeds": list(range(8)), "passed": passed, "of": 8, "complete": True,
                "confirmed": S.confirmed(rows), "per_seed": rows}

    def record(*rounds):
        return S._choose({**S._header("cpu"), "pending": [], "rounds": list(rounds)})

    yes = record(rnd(3), rnd(6, 10700))
    no = record(rnd(3), rnd(5, 10700))
    assert yes["confirmed"] and yes["chosen_round"] == 1
    assert "confirmed." in S.describe_confirmation(yes)
    assert "The book's subject is" in S.describe_confirmation(yes)
    assert not no["confirmed"] and no["chosen_round"] == 1 and no["passed"] == 5
    words = S.describe_confirmation(no)
    assert "not confirmed (the rule needs 6)" in words and "highest pass rate" in words
    assert "at most 10,700 steps" in words
    assert S.describe_confirmation(None).startswith("No confirmation on fresh seeds is recorded")


def test_the_scout_s_runs_are_chapter_3_s_points_on_the_fourth_round_s_seeds():
    """The first scout's runs are chapter 3's configs of its points (one run id each), on
    the fourth round's first seeds; the fifth round's seeds are fresh; every candidate is
    a change to the fourth round's recipe."""
    from grokbook.chapters import sweeps
    from grokbook.core.store import run_id
    cfgs = S.scout_configs("cpu")
    size_phi = sweeps.default_grid("cpu")["size_phi"]
    for i, c in cfgs:
        point = {**S.SCOUTS["cpu"][0]["candidates"][i], "seed": c.seed}
        if "data.n_entities" in point:
            point["data.phi"] = size_phi
        assert run_id(sweeps.point_config("cpu", point)) == run_id(c)
    assert len(cfgs) == 6
    fourth = S.round_configs("cpu", S.read_summary("cpu"), S.read_summary("cpu", refine=True))[3]
    assert all(sc["seeds"] == tuple(c.seed for c in fourth[:3]) for sc in S.SCOUTS["cpu"])
    fifth = S.CONFIRMATION["cpu"][4]
    assert len(fifth) == 8 and not set(fifth) & (set(S.search_seeds("cpu"))
                                                 | set(S.confirmation_seeds("cpu")[:32]))
    for i, c in cfgs:
        change = S.SCOUTS["cpu"][0]["candidates"][i]
        assert c.replace(**{k: S._field(fourth[0], k) for k in change},
                         **{"train.stop_at": fourth[0].train.stop_at,
                            "train.stop_after_grokked": fourth[0].train.stop_after_grokked}
                         ) == fourth[0].replace(seed=c.seed)


def test_every_cpu_scout_changes_only_its_declared_fields_of_the_fourth_round():
    fourth = S.round_configs("cpu", S.read_summary("cpu"), S.read_summary("cpu", refine=True))[3]
    stop = {"train.stop_at": fourth[0].train.stop_at,
            "train.stop_after_grokked": fourth[0].train.stop_after_grokked}
    for n, spec in enumerate(S.SCOUTS["cpu"]):
        cfgs = S.scout_configs("cpu", index=n)
        assert len(cfgs) == len(spec["candidates"]) * len(spec["seeds"])
        for i, c in cfgs:
            change = spec["candidates"][i]
            assert all(S._field(c, k) == v for k, v in change.items())
            assert c.replace(**{k: S._field(fourth[0], k) for k in change}, **stop) \
                == fourth[0].replace(seed=c.seed)
    third = S.SCOUTS["cpu"][2]["candidates"]
    assert S._change_label(third[0]) == "phi 4.5, precision bf16, max_steps 15,500"


def test_the_subject_command_passes_its_workers_to_every_path(monkeypatch):
    from grokbook.book.cli import main
    seen = []
    fake = lambda *a, **k: seen.append(k.get("workers")) or {"pending": ["x"]}  # noqa: E731
    for name in ("scout", "confirm_round", "confirmation"):
        monkeypatch.setattr(S, name, fake)
    monkeypatch.setattr(S, "confirmation_record", lambda *a, **k: {})
    for extra in (["--scout"], ["--round", "5"], []):
        assert main(["subject", "--preset", "test", "--workers", "2", "--json", *extra]) == 0
    assert seen == [2, 2, 2]


def test_the_scout_chooses_by_passes_then_the_deepest_wait_and_may_choose_none():
    c = lambda passed, depth: {"passed": passed, "median_heldout_at_memorized": depth}  # noqa
    assert S.choose_scout([c(2, 0.15), c(3, 0.19)], need=2) == 1
    assert S.choose_scout([c(2, 0.15), c(2, 0.11)], need=2) == 1
    assert S.choose_scout([c(2, 0.11), c(2, 0.11)], need=2) == 0
    assert S.choose_scout([c(2, None), c(2, 0.3)], need=2) == 1
    assert S.choose_scout([c(1, 0.05), c(0, None)], need=2) is None


def test_the_fifth_round_is_the_fourth_with_the_scout_s_change_and_only_a_declared_one():
    summary = {"chosen": [{"arch": "trm", "data.phi": 3.0}] * 2}
    refined = {"chosen": [{"arch": "trm", "data.phi": 3.5}]}
    cands = [{"change": c} for c in S.SCOUTS["test"][0]["candidates"]]
    later = [{"change": c} for c in S.SCOUTS["test"][1]["candidates"]]
    none = {"chosen": None, "candidates": cands}
    four = S.round_configs("test", summary, refined, [none])
    five = S.round_configs("test", summary, refined, [{"chosen": 0, "candidates": cands}])
    # the second scout's choice, the first having chosen none
    second = S.round_configs("test", summary, refined, [none, {"chosen": 0, "candidates": later}])
    assert second[4][0] == four[3][0].replace(seed=second[4][0].seed,
                                              **S.SCOUTS["test"][1]["candidates"][0])
    assert len(four) == 4 and len(five) == 5
    assert [c.seed for c in five[4]] == list(S.CONFIRMATION["test"][4])
    assert five[4][0].data.n_entities == 50 != four[3][0].data.n_entities
    assert five[4][0] == four[3][0].replace(seed=five[4][0].seed, **{"data.n_entities": 50})
    p = S.confirmation_plan("test", summary, refined, [{"chosen": 0, "candidates": cands}])
    fifth = [e for e in p if e.labels["round"] == 5]
    assert len(fifth) == 2 and all(len(e.after) == 8 for e in fifth)
    words = S.rounds_text({"rounds": [{"passed": 1, "of": 2, "confirmed": False}] * 5})
    assert "Round 5 (the scout's winner) passed on 1 of 2" in words
    with pytest.raises(S.ConfigError, match="subject_confirmation_test.json.*scout 1.*--scout"):
        S.round_configs("test", summary, refined, [{"chosen": 7, "candidates": cands}])
    with pytest.raises(S.ConfigError, match="scout 2's chosen candidate 0 is not one"):
        S.round_configs("test", summary, refined, [none, {"chosen": 0, "candidates": cands}])
    # a record written with one scout, under "scout", reads as a list of one
    assert S.scouts_of({"scout": none}) == [none] and S.scouts_of({}) == []
    with pytest.raises(S.ConfigError, match="scout.*declared: cpu, test"):
        S.scout_configs("paper")


def test_the_scout_trains_its_runs_and_records_its_choice(store, capsys):
    """End to end at the test preset: refused before anything trains unless the record
    holds four failed rounds; then it trains its four runs and records each candidate's
    seeds and its choice beside the rounds, and a fifth round trains only if it chose one."""
    from grokbook.core.store import run_id
    summary = {"chosen": [{"arch": "trm", "data.phi": 3.0, "model.init_scale": 2.0}] * 2}
    refined = {"chosen": [{"arch": "trm", "data.phi": 3.5, "model.init_scale": 2.0}]}
    plan = S.confirmation_plan("test", summary, refined, {})

    def failed(i, **over):
        ids = [run_id(e.config) for e in plan if e.labels["round"] == i]
        return {"passed": 0, "of": 2, "complete": True, "confirmed": False,
                "recipe": {"arch": "trm", "d_model": 32, "phi": 4.0, "weight_decay": 0.1,
                           "init_scale": 1.0, "lr": 0.01, "n_entities": 60, "max_steps": 99},
                "seeds": list(S.CONFIRMATION["test"][i - 1]),
                "per_seed": [{"run": x, "outcome": S.NOT_GROKKED, "passed": False}
                             for x in ids], **over}

    record = {"preset": "test", "rounds": [failed(i) for i in (1, 2, 3, 4)], "pending": [],
              "commit": "abc", "read": "2026-01-01", "source": "the committed record"}
    go = lambda rec: S.scout("test", rec, store=store, summary=summary,  # noqa: E731
                             refined=refined)
    with pytest.raises(S.ConfigError, match="does not hold rounds 1-4 complete"):
        go({**record, "rounds": record["rounds"][:3]})
    with pytest.raises(S.ConfigError, match="already confirmed"):
        go({**record, "rounds": [failed(1, confirmed=True)] + record["rounds"][1:]})
    assert not (store / "runs").exists() or not list((store / "runs").iterdir())
    out = go(record)
    sc, = out["scouts"]
    assert out["rounds"] == record["rounds"] and "source" not in out and sc["scout"] == 1
    assert [c["change"] for c in sc["candidates"]] == list(S.SCOUTS["test"][0]["candidates"])
    assert all(c["of"] == 2 and c["passed"] == sum(r["passed"] for r in c["per_seed"])
               for c in sc["candidates"])
    assert sc["chosen"] == S.choose_scout(sc["candidates"], 1) and sc["commit"] and sc["read"]
    assert len(list((store / "runs").iterdir())) == 4      # its own runs only
    words = S.describe_scout(sc)
    assert "seeds 6, 7" in words and ("fifth round is" in words) == (sc["chosen"] is not None)
    rounds = S.round_configs("test", summary, refined, [sc])
    assert len(rounds) == (5 if sc["chosen"] is not None else 4)
    table = S.scout_table(out)
    assert len(table) == 4 and set(table["seed"]) == {6, 7}
    # a choice, recorded, makes round 5 trainable beside the failed rounds, scout kept
    if sc["chosen"] is None:     # the next scout runs; after it, every declared one is held
        two = go(out)
        assert [x["scout"] for x in two["scouts"]] == [1, 2]
        with pytest.raises(S.ConfigError, match="already holds every scout"):
            go(two)
    else:
        with pytest.raises(S.ConfigError, match="already chose the fifth round"):
            go(out)
    forced = {**out, "scouts": [{**sc, "chosen": 0}]}
    five = S.confirm_round("test", 5, forced, store=store, summary=summary, refined=refined)
    assert [r["seeds"] for r in five["rounds"]][4] == list(S.CONFIRMATION["test"][4])
    assert five["rounds"][4]["recipe"]["n_entities"] == 50
    assert five["scouts"][0]["chosen"] == 0
    assert "the fifth round is the fourth's recipe with n_entities 50" in \
        S.describe_confirmation(five)
    from grokbook.book.cli import main
    for extra in (["--no-train"], ["--search"], ["--refine"], ["--round", "5"]):
        assert main(["subject", "--preset", "test", "--scout", *extra]) == 2
        assert "--scout" in capsys.readouterr().err


def test_the_verdicts_read_the_first_seeds_that_passed():
    """The claim seeds are the subject's seeds that passed the rule in the committed record
    (in seed order), topped up with the others in order; without a record, the first."""
    record = S.confirmation_record("cpu")
    passed = [r["seed"] for r in record["per_seed"] if r["passed"]]
    assert S.claim_seeds("cpu") == passed[:3] and len(passed) >= 3
    assert S.claim_seeds("cpu") != list(S.CONFIRMATION["cpu"][3][:3])   # 71-73 failed
    assert S.claim_seeds("test") == list(S.CONFIRMATION["test"][0][:2])
    from grokbook.chapters import paths, recipe
    assert paths.claim_seeds("cpu") == S.claim_seeds("cpu")
    assert recipe.first_seed("cpu") == passed[0]
    assert "passed the rule" in S.describe_claim_seeds("cpu")


def test_the_claim_seeds_top_up_with_the_others_in_order_and_need_the_trained_round(
        monkeypatch, tmp_path):
    from grokbook.chapters import settings
    committed = json.loads(S.confirmation_path("cpu").read_text())
    k = settings.of("cpu")["subject_round"]
    path = tmp_path / "subject_confirmation_cpu.json"
    monkeypatch.setattr(S, "confirmation_path", lambda preset_name, root=None: path)

    def write(passed=(), seeds=None):
        rec = json.loads(json.dumps(committed))
        rnd = rec["rounds"][k]
        for r in rnd["per_seed"]:
            r["passed"] = r["seed"] in passed
        if seeds is not None:
            rnd["seeds"] = seeds
        path.write_text(json.dumps(rec))

    subject_seeds = settings.subject_seeds("cpu")
    write(passed=(subject_seeds[6], subject_seeds[2]))
    assert S.claim_seeds("cpu") == [subject_seeds[2], subject_seeds[6], subject_seeds[0]]
    assert "only 2 passed" in S.describe_claim_seeds("cpu")
    write(passed=subject_seeds, seeds=[1, 2, 3])       # not the round the book trains
    assert S.claim_seeds("cpu") == subject_seeds[:3]
    assert "no confirmation record" in S.describe_claim_seeds("cpu")
