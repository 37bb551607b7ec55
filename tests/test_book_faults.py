"""The book command's faults (dead kernel, bad --chapters, which book) and its progress feed."""
import json
import os

import nbformat

from conftest import ROOT, small
from grokbook.book import pipeline as gbook
from grokbook.book.cli import main


def _book(tmp, *cells):
    (tmp / "book").mkdir(parents=True)
    (tmp / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    (tmp / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                  "  - file: book/01_only\n")
    (tmp / "book" / "intro.md").write_text("# A small book\n")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "cpu"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp / "book" / "01_only.ipynb")
    return tmp


def test_a_dead_kernel_names_the_chapter_and_cell(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))
    root = _book(tmp_path / "src", "x = 1", "import os\nos._exit(3)", "y = 2")
    rc = gbook.build_book(preset="test", root=root, out=tmp_path / "out", html=False)
    err = capsys.readouterr().err
    assert rc == 1
    assert "book/01_only" in err and "kernel died" in err
    assert "cell 2" in err and "first line of the cell: import os" in err
    assert "Traceback" not in err


def test_empty_chapter_list_is_refused(capsys):
    assert main(["book", "--chapters", ",", "--root", str(ROOT), "--no-html"]) == 2
    assert "--chapters" in capsys.readouterr().err


def test_the_book_is_the_one_where_the_user_stands(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))
    monkeypatch.setenv("GROKBOOK_STORE", str(tmp_path / "store"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["book", "--preset", "test", "--no-html"]) == 2
    assert "no book here" in capsys.readouterr().err
    mine = _book(tmp_path / "mine", "print('my own book')")
    monkeypatch.chdir(mine / "book")
    assert main(["book", "--preset", "test", "--no-html"]) == 0
    out = capsys.readouterr().out
    assert f"building the book in {mine}" in out
    assert (mine / "_build" / "executed" / "book" / "01_only.ipynb").exists()
    assert main(["book", "--root", str(elsewhere)]) == 2
    assert "--root" in capsys.readouterr().err


# ---------------------------------------------------------------- progress
def test_progress_lines_say_which_run_steps_and_time_left(tmp_path, store, monkeypatch):
    from grokbook.core import progress
    from grokbook.core.store import train
    feed = tmp_path / "feed.jsonl"
    monkeypatch.setenv(progress.ENV, str(feed))
    cfgs = [small(seed=s) for s in (0, 1)]
    lines = []
    with progress.Watcher(feed, "ch: ", every=0.0, printer=lines.append) as w:
        with progress.plan(cfgs):
            train(cfgs[0], store=store, progress=False)
            events = [json.loads(x) for x in feed.read_text().splitlines()]
            w.poll()
            train(cfgs[1], store=store, progress=False)
            train(cfgs[0], store=store, progress=False)  # stored: no training, no line
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and kinds[1] == "start" and "step" in kinds and kinds[-1] == "end"
    assert events[0]["n"] == 2 and all(w > 0 for w in events[0]["work"])
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps == sorted(steps) and steps[-1] == cfgs[0].train.max_steps
    assert any(l.startswith("ch: run 1 of 2 (") and "steps/s" in l and "left" in l
               for l in lines), lines


def test_status_estimates_the_planned_work_from_flops():
    from grokbook.core.progress import Status
    s = Status()
    s.feed({"event": "plan", "n": 3, "work": [100.0, 100.0, 300.0]})
    s.feed({"event": "start", "run": "a", "max_steps": 10, "step": 0, "flops_per_step": 10.0})
    s.feed({"event": "step", "run": "a", "step": 5, "sps": 1.0})
    # 5 s left in this run; 400 FLOPs to go in the next two runs at 10 FLOP/s = 40 s more
    assert s.line() == ("run 1 of 3 (a): step 5/10, 1.0 steps/s, ~5 s left in this run, "
                        "~45 s for the runs planned")
    s.feed({"event": "end", "run": "a"})
    assert s.line() is None
    # two workers side by side: the planned rest takes half as long
    s.feed({"event": "plan", "n": 4, "work": [100.0, 100.0, 200.0, 200.0]})
    for rid in ("a", "b"):
        s.feed({"event": "start", "run": rid, "max_steps": 10, "step": 0,
                "flops_per_step": 10.0})
    s.feed({"event": "step", "run": "a", "step": 5, "sps": 1.0})
    assert s.line().startswith("run 2 of 4 (a): step 5/10, 1.0 steps/s, ~5 s left in this "
                               "run, ~25 s for the runs planned")


def test_progress_writes_nothing_without_the_variable(tmp_path, store, monkeypatch):
    from grokbook.core import progress
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    from grokbook.core.store import train
    train(small(), store=store, progress=False)
    assert not list(tmp_path.glob("*.jsonl"))


def test_static_page_keeps_a_widgets_default_view_and_drops_progress_bars():
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_out"]}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "metadata": {},
             "data": {"text/plain": "the default chart"}}]}},
        "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_p"]}},
        "p": {"model_name": "FloatProgressModel", "state": {}},
    }

    def view(mid):
        return {"output_type": "display_data", "metadata": {},
                "data": {gbook.WIDGET_VIEW: {"model_id": mid}, "text/plain": "a widget"}}

    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {},
                     "outputs": [view("box"), view("bar")]},
                    {"cell_type": "markdown", "source": "text", "metadata": {}}],
          "metadata": {"widgets": {gbook.WIDGET_STATE: {"state": state}}}}
    out = json.loads(gbook.static_notebook(json.dumps(nb).encode()))
    shown = out["cells"][0]["outputs"]
    assert [o["data"] for o in shown] == [{"text/markdown": gbook.LIVE_NOTE},
                                         {"text/plain": "the default chart"}]
    assert "widgets" not in out["metadata"]
    plain = {"cells": [], "metadata": {}}
    assert gbook.static_notebook(json.dumps(plain).encode()) == json.dumps(plain).encode()


def test_status_follows_runs_in_progress_side_by_side():
    """Two workers report at once; one run ending must not silence the other."""
    from grokbook.core.progress import Status
    s = Status()
    for rid in ("a", "b"):
        s.feed({"event": "start", "run": rid, "max_steps": 100, "step": 0})
    s.feed({"event": "step", "run": "a", "step": 10, "sps": 2.0})
    s.feed({"event": "step", "run": "b", "step": 40, "sps": 4.0})
    assert s.line().startswith("run (b): step 40/100") and "(2 runs in progress)" in s.line()
    s.feed({"event": "end", "run": "b"})
    s.feed({"event": "step", "run": "a", "step": 20, "sps": 2.0})
    assert s.line() == "run (a): step 20/100, 2.0 steps/s, ~40 s left in this run"
    s.feed({"event": "end", "run": "a"})
    assert s.line() is None
