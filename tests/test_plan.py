"""Run plans: entries declared as data, one scheduler that trains them as a graph."""
import json

import pytest

from grokbook import preset
from grokbook.core.plan import (FAILED, MISSING, SKIPPED, STORED, TRAINED, WAITING, Plan,
                                PlanError, Planned, plan_runs, predict, resolve)

SHORT = {"train.max_steps": 20, "train.eval_every": 10, "train.eval_dense_until": 20,
         "train.checkpoint_every": 10}


def short(**over):
    return preset("test", **{**SHORT, **over})


def finetune_of(runs):
    from grokbook.chapters.transfer import finetune_config
    parent = runs["a"]
    return finetune_config(parent, parent.checkpoints[-1], max_steps=10)


def test_a_plan_trains_what_its_entries_need_and_says_what_became_of_each(store):
    reports = []
    p = Plan([Planned("a", "02", "subject", short()),
              Planned("a again", "03", "sweep point", short()),     # the same run
              Planned("b", "02", "seed", short(seed=1)),
              Planned("never", "04", "control", short(seed=2), after=("a",),
                      when=lambda runs: False, note="only if a grokked"),
              Planned("tune", "06", "fine-tune", after=("a",), build=finetune_of),
              Planned("after never", "06", "fine-tune", after=("never",), build=finetune_of)])
    out = resolve(p, store, report=lambda o, done, total: reports.append((o.name, done, total)))
    assert [out[n].status for n in p.names()] == [TRAINED, TRAINED, TRAINED, SKIPPED, TRAINED,
                                                  SKIPPED]
    assert out["a"].run_id == out["a again"].run_id                  # one run, two readers
    assert len({p.name for p in (store / "runs").iterdir()}) == 3    # a, b, the fine-tune
    assert out["never"].reason == "only if a grokked" and out["never"].run is None
    assert "comes after never" in out["after never"].reason
    assert out["tune"].run.config.parent.startswith(out["a"].run_id + "@")
    assert len(reports) == len(p) and reports[-1][1:] == (len(p), len(p))
    again = resolve(p, store)                                        # now it only reads
    assert {again[n].status for n in ("a", "b", "tune")} == {STORED}
    assert again["never"].status == SKIPPED


def test_without_training_a_plan_says_what_is_missing_and_what_waits(store):
    p = Plan([Planned("a", "02", "subject", short()),
              Planned("tune", "06", "fine-tune", after=("a",), build=finetune_of)])
    out = resolve(p, store, train=False)
    assert out["a"].status == MISSING and out["a"].run_id
    assert out["tune"].status == WAITING and "comes after a" in out["tune"].reason
    assert not (store / "runs").exists() or not list((store / "runs").iterdir())
    from grokbook.core.plan import PlanRunError
    with pytest.raises(PlanRunError, match="a: missing"):
        plan_runs(p, store=store, train=False)


def test_a_when_sees_a_parent_that_was_skipped_as_none(store):
    seen = {}

    def when(runs):
        seen.update(runs)
        return runs["skipped"] is None
    p = Plan([Planned("a", "02", "subject", short()),
              Planned("skipped", "04", "control", short(seed=1), after=("a",),
                      when=lambda runs: False),
              Planned("runs", "04", "control", short(seed=2), after=("a", "skipped"),
                      when=when)])
    out = resolve(p, store)
    assert out["runs"].status == TRAINED and seen["skipped"] is None
    assert seen["a"].id == out["a"].run_id


def test_a_failed_run_is_reported_and_the_others_finish(store):
    # a learning rate that diverges fails; the other entry of the plan is still trained
    bad = short(**{"train.lr": 1e30, "train.grad_clip": 0.0, "train.warmup_steps": 0})
    p = Plan([Planned("bad", "02", "subject", bad), Planned("good", "02", "seed", short())])
    out = resolve(p, store)
    assert out["bad"].status == FAILED and "diverged" in out["bad"].reason
    assert out["good"].status == TRAINED


def test_plans_refuse_duplicates_unknown_parents_and_cycles():
    with pytest.raises(PlanError, match="'a' is declared twice"):
        Plan([Planned("a", "02", "subject", short()), Planned("a", "02", "seed", short())])
    with pytest.raises(PlanError, match="neither a config nor a build"):
        Plan([Planned("a", "02", "subject")])
    with pytest.raises(PlanError, match="not in the plan"):
        Plan([Planned("a", "02", "x", short(), after=("ghost",))]).check()
    with pytest.raises(PlanError, match="cycle"):
        Plan([Planned("a", "02", "x", short(), after=("b",)),
              Planned("b", "02", "x", short(), after=("a",))]).check()
    with pytest.raises(PlanError, match="different configs"):
        Plan([Planned("a", "02", "x", short())]).extend(
            [Planned("a", "03", "x", short(seed=3))])


def test_worker_processes_train_the_same_runs_as_this_process(tmp_path):
    p = Plan([Planned(f"s{s}", "02", "seed", short(seed=s)) for s in (0, 1)]
             + [Planned("tune", "06", "fine-tune", after=("s0",),
                        build=lambda runs: finetune_of({"a": runs["s0"]}))])
    here = resolve(p, tmp_path / "here", workers=1)
    there = resolve(p, tmp_path / "there", workers=2)
    for n in p.names():
        a, b = here[n].run, there[n].run
        assert a.id == b.id
        assert a.metrics.equals(b.metrics), n


def test_predicted_seconds_come_from_the_measured_rate_of_the_shape(store):
    cfg = short()
    s = predict(cfg, store)
    rates = json.loads((store / "rates.json").read_text())
    assert len(rates) == 1 and s > 0
    longer = short(**{"train.max_steps": 200, "train.eval_dense_until": 200})
    assert predict(longer, store, measure=False) > 5 * s       # same shape: no new timing
    assert len(json.loads((store / "rates.json").read_text())) == 1
    other = preset("test", "dense", **SHORT)
    assert predict(other, store, measure=False) is None        # an unmeasured shape


def test_the_book_plan_declares_each_chapter_once_and_builds_fine_tunes_later():
    from grokbook.chapters.plans import CHAPTERS, book_plan, plan_summary, plan_table
    p = book_plan("test")
    p.check()
    assert {e.chapter for e in p} == set(CHAPTERS)
    tunes = [e for e in p if e.role == "fine-tune"]
    assert tunes and all(e.config is None and e.build and e.after and e.like for e in tunes)
    assert all(e.config is not None for e in p if e.role != "fine-tune")
    table = plan_table("test", ["02", "06"], measure=False)
    assert set(table["chapter"]) == {"02", "06"}
    assert set(table.loc[table["role"] == "fine-tune", "state"]) == {"waiting"}
    s = plan_summary(table)
    waits = [e for e in p if e.chapter in ("02", "06") and e.after]   # the fine-tunes only
    assert s["to_train"] == s["runs"] and s["waiting"] == len(waits) == len(
        [e for e in tunes if e.chapter == "06"])


def test_plan_command_lists_runs_and_refuses_bad_chapters(store, capsys):
    from grokbook.book.cli import main
    assert main(["plan", "--preset", "test", "--chapters", "02", "--no-measure", "--store",
                 str(store)]) == 0        # nothing timed yet: the line says so, not "0 min"
    line = capsys.readouterr().out.splitlines()[-1]
    assert "not predicted: their shapes' speed is not measured" in line and "min" not in line
    assert main(["plan", "--preset", "test", "--chapters", "02", "--json", "--store",
                 str(store)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["to_train"] == out["summary"]["runs"] > 0
    assert {"chapter", "name", "role", "run", "after", "when", "state", "flops",
            "seconds"} <= set(out["runs"][0])
    assert all(r["seconds"] > 0 for r in out["runs"])
    assert main(["plan", "--preset", "test", "--chapters", "2x"]) == 2
    assert "--chapters" in capsys.readouterr().err
