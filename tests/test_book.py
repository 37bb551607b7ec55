"""The book end to end at the ``test`` preset: papermill, nbval, Jupyter Book, failures.

One session fixture builds the whole book (the chapters that exist) into a tmp folder
with a tmp run store; the tests then re-execute every chapter with nbval against the
papermill outputs, check the HTML, and check that a broken chapter stops the build with
a message naming it.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import ROOT

SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


@pytest.fixture(scope="session")
def book(tmp_path_factory):
    from grokbook.book.pipeline import build_book, chapter_list
    tmp = tmp_path_factory.mktemp("book")
    store, out = tmp / "store", tmp / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROKBOOK_STORE", str(store))
        mp.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
        mp.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))
        rc = build_book(preset="test", root=ROOT, out=out)
    assert rc == 0, "the book did not build at the test preset (see the output above)"
    present, _ = chapter_list(ROOT)
    return {"out": out, "store": store, "chapters": present}


def test_every_chapter_was_executed_with_provenance(book):
    assert book["chapters"], "no chapter notebooks in _toc.yml exist"
    for entry in book["chapters"]:
        path = book["out"] / "executed" / f"{entry}.ipynb"
        nb = nbformat.read(path, as_version=4)
        meta = nb.metadata["grokbook"]
        assert meta["preset"] == "test"
        assert {"device", "torch", "grokbook", "commit", "wall_seconds"} <= set(meta)
        assert "Executed with preset `test`" in nb.cells[-1].source
        assert nb.metadata["papermill"]["parameters"] == {"preset": "test"}


def test_nbval_reexecution_matches_papermill_outputs(book):
    notebooks = [str(book["out"] / "executed" / f"{e}.ipynb") for e in book["chapters"]]
    env = dict(os.environ, GROKBOOK_STORE=str(book["store"]), OMP_NUM_THREADS="1",
               PYDEVD_DISABLE_FILE_VALIDATION="1")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval", *notebooks, "--nbval-current-env",
         "--nbval-sanitize-with", str(SANITIZE), "-p", "no:cacheprovider",
         "--rootdir", str(book["out"]), "-c", os.devnull],
        cwd=book["out"], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_html_pages_have_charts_and_colab_links(book):
    html = book["out"] / "html"
    assert (html / "index.html").exists()
    assert (html / "_static" / "vega-bundle.js").stat().st_size > 100_000
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    slug = repo.rstrip("/").split("github.com/")[1]
    assert (html / "book" / "intro.html").exists()
    for entry in book["chapters"]:
        page = (html / f"{entry}.html").read_text()
        assert "vega-bundle.js" in page, f"{entry}: the vega libraries are not served"
        assert re.search(r"window\.vegaEmbed\(el, spec", page), f"{entry}: no vega-embed chart"
        colab = f"https://colab.research.google.com/github/{slug}/blob/main/{entry}.ipynb"
        assert colab in page, f"{entry}: no Colab link to {colab}"
    first = (html / "book" / "01_data.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" not in first  # its viewer is a CDN's
    assert "An interactive widget stands here" in first


EXTERNAL = re.compile(r"^\s*(https?:)?//", re.I)


def test_built_pages_load_nothing_from_outside(book):
    """Every script, stylesheet, image and frame a page loads comes from the built book
    (links a reader may click, such as Colab's, are not loads)."""
    from html.parser import HTMLParser
    html = book["out"] / "html"
    loads = {"script": ("src",), "img": ("src",), "iframe": ("src",), "embed": ("src",),
             "source": ("src",), "link": ("href",)}

    class Loads(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found = []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "link" and not {"stylesheet", "preload", "icon", "modulepreload"} \
                    & set((a.get("rel") or "").split()):
                return
            self.found += [a[k] for k in loads.get(tag, ()) if a.get(k)]

    outside = []
    for page in html.rglob("*.html"):
        parser = Loads()
        parser.feed(page.read_text())
        outside += [f"{page.relative_to(html)}: {u}" for u in parser.found if EXTERNAL.match(u)]
    for css in html.rglob("*.css"):
        outside += [f"{css.relative_to(html)}: {u}" for u in
                    re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", css.read_text())]
    assert not outside, "pages load from outside the book:\n" + "\n".join(outside[:20])


def test_built_pages_read_cleanly(book):
    """Every table cell shows a value (no NaN) in full (nothing cut to "..."), every chapter
    page has a chart, and every link inside the book leads to a page it built."""
    from html.parser import HTMLParser
    html = book["out"] / "html"

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.cells, self.links, self.in_cell = [], [], False

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag in ("td", "th"):
                self.in_cell, self.text = True, ""
            if tag == "a" and a.get("href") and not EXTERNAL.match(a["href"]) and \
                    not a["href"].startswith(("#", "mailto:", "javascript:")):
                self.links.append(a["href"])

        def handle_data(self, data):
            if self.in_cell:
                self.text += data

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.in_cell:
                self.cells.append(self.text.strip())
                self.in_cell = False

    for page in html.rglob("*.html"):
        p = Page()
        p.feed(page.read_text())
        bad = [c for c in p.cells if c.lower() in ("nan", "none") or c.endswith("...")]
        assert not bad, f"{page.relative_to(html)}: cells {bad[:5]}"
        for link in p.links:
            target = (page.parent / link.split("#")[0].split("?")[0]).resolve()
            assert target.exists(), f"{page.relative_to(html)}: broken link {link}"
    for entry in book["chapters"]:
        assert "vegaEmbed(el, spec" in (html / f"{entry}.html").read_text(), entry


def test_pytest_does_not_collect_build_outputs():
    import tomllib
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "_build" in cfg["norecursedirs"]


def _broken_book(tmp: Path) -> Path:
    (tmp / "book").mkdir(parents=True)
    (tmp / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    (tmp / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/01_broken\n"
        "  - file: book/02_not_written_yet\n")
    (tmp / "book" / "intro.md").write_text("# A broken book\n")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "cpu"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise RuntimeError('chapter is broken on purpose')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp / "book" / "01_broken.ipynb")
    return tmp


def test_broken_chapter_stops_the_build_and_is_named(tmp_path, capsys, monkeypatch):
    from grokbook.book import pipeline as gbook
    from grokbook.book.cli import main
    root = _broken_book(tmp_path / "src")
    monkeypatch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))
    rc = gbook.build_book(preset="test", root=root, out=tmp_path / "out", html=False)
    err = capsys.readouterr()
    assert rc != 0
    assert "book/01_broken" in err.err and "RuntimeError" in err.err
    assert "chapter is broken on purpose" in err.err and "cell" in err.err
    assert "02_not_written_yet" in err.out  # a missing chapter is a warning, not a failure
    # the command line builds the book where the user stands
    monkeypatch.chdir(root / "book")
    assert main(["book", "--preset", "test", "--no-html"]) != 0
    assert "book/01_broken" in capsys.readouterr().err


def test_the_plan_holds_every_run_the_chapters_read(book):
    """The build trains the book's plan before the chapters execute; the chapters then
    only read: every run in the store (an empty one before the build) is a run of the
    plan, and none of the plan's runs is missing or failed."""
    from grokbook.chapters.plans import book_plan
    from grokbook.core.plan import FAILED, MISSING, WAITING, resolve
    out = resolve(book_plan("test"), book["store"], train=False)
    assert not [o.name for o in out.values() if o.status in (FAILED, MISSING, WAITING)]
    planned = {o.run_id for o in out.values() if o.run is not None}
    runs = book["store"] / "runs"
    stored = {p.name for p in runs.iterdir() if (p / "COMPLETE").exists()}
    assert planned and stored == planned, sorted(stored ^ planned)


def test_claims_json_gives_every_verdict_from_the_books_store(book):
    """``grokbook claims --json`` on the store the book just filled: every claim of the
    scorecard (and claim 1 for the dense model beside the subject) as a verdict object."""
    import json

    from grokbook.analysis.definitions import NOT_MEASURED, NOT_REPLICATED, PARTLY, REPLICATES
    from grokbook.chapters.verdict import VERDICT_RULES
    r = subprocess.run([sys.executable, "-m", "grokbook", "claims", "--preset", "test", "--json",
                        "--store", str(book["store"])], capture_output=True, text=True,
                       timeout=900, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["preset"] == "test"
    assert set(VERDICT_RULES) | {"claim1_same_path_dense"} <= set(out)
    # the same verdicts, runs and evidence as the committed record of the test preset's
    # claims (tests/data; rewrite it with `grokbook claims --preset test --json` when a
    # change is meant to move them, and say why in the commit)
    same_as_record(out, json.loads((ROOT / "tests" / "data" /
                                    "claims_test_preset.json").read_text()))
    for key in set(out) - {"preset"}:
        v = out[key]
        assert v["verdict"] in (REPLICATES, PARTLY, NOT_REPLICATED, NOT_MEASURED), key
        assert v["rule"] == VERDICT_RULES[key.removesuffix("_dense")]
        assert all(isinstance(x, str) for x in v["runs"]), key
        assert v["runs"] or v["verdict"] == NOT_MEASURED, key
        assert isinstance(v["evidence"], dict) and v["this_book"], key
    assert all(s["memorized_step"] is None or isinstance(s["memorized_step"], int)
               for s in out["wang_grokking"]["evidence"]["per_seed"])
    # Wang's grokking reads chapter 2's subject on its fresh seeds (the runs the book trained)
    from grokbook.chapters import paths, settings
    first = list(settings.of("test")["confirmation"][0])
    per_seed = out["wang_grokking"]["evidence"]["per_seed"]
    assert [s["seed"] for s in per_seed] == first and len(out["wang_grokking"]["runs"]) == 2
    assert all(s["class"] for s in per_seed)
    # claim 1 reads every claim seed
    c1 = out["claim1_same_path"]
    assert [e["seed"] for e in c1["evidence"]["per_seed"]] == paths.claim_seeds("test")
    # claim 3 per starting point and probe kind: final, best, interval, steps, rising
    starts = out["claim3_transfer"]["evidence"]["starts"]
    assert {"grokked", "floor", "hop2_control"} <= set(starts)
    assert {"final", "best", "lo", "hi", "n", "steps", "rising"} <= set(
        starts["grokked"]["new_hop1_replayed_hop2"])
    assert "hop2_control_test" in starts["hop2_control"]
    # claim 2 per (regime, architecture): clock, crossings per curve, ends, classes
    per_run = out["claim2_fake_grokking"]["evidence"]["per_run"]
    assert {(r["regime"], r["arch"]) for r in per_run} >= {("hop2_only", "trm"), ("both_full", "trm")}
    one = per_run[0]
    assert {"fitted", "memorized", "steps", "clock", "verdict", "lenient_check", "curves"} <= set(one)
    assert {"exact", "target_lenient", "strict", "lenient", "lenient_control"} == set(one["curves"])
    assert {"step_0.5", "x_fit_0.5", "x_fit_0.5_lo", "x_fit_0.5_hi", "end", "end_lo", "end_hi",
            "rising"} <= set(one["curves"]["exact"])
    assert set(one["verdict"]) == {"strict", "lenient"}
    # a curve that did not arrive is censored at the run's length, never a bare null
    assert all(c["step_0.5"] is not None for r in per_run for c in r["curves"].values())


def same_as_record(out: dict, record: dict, tol: float = 1e-3) -> None:
    """Every claim's verdict, run ids and evidence equal the record's (numbers within
    ``tol``: kernels may round differently on another processor)."""
    def close(a, b, where):
        if isinstance(a, dict) and isinstance(b, dict):
            assert set(a) == set(b), (where, sorted(set(a) ^ set(b)))
            for k in a:
                close(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, list) and isinstance(b, list):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b)):
                close(x, y, f"{where}[{i}]")
        elif isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
            assert abs(a - b) <= tol * max(1.0, abs(b)), (where, a, b)
        else:
            assert a == b, (where, a, b)
    assert set(out) == set(record)
    for key in set(record) - {"preset"}:
        for part in ("verdict", "runs", "evidence"):
            close(out[key][part], record[key][part], f"{key}.{part}")


def test_cost_ledger_has_a_row_per_shortcut(book):
    from grokbook.chapters import shortcuts, verdict
    collected = verdict.collect("test", store=book["store"])
    costs = verdict.ledger(collected)
    ood = verdict.claim_numbers(collected)["wang_ood"]["runs"]   # chapter 2, each run once
    assert len(ood) == len(set(ood)) and set(ood) >= {collected["default"].id}
    assert {r.id for r in collected["seed_runs"]
            if r.steps == r.config.train.max_steps} <= set(ood)
    rows = costs[costs.chapter == "7 shortcut"]
    assert set(rows["shortcut"]) == set(shortcuts.tuned("test")) and len(rows) == len(
        shortcuts.tuned("test")) * len(collected["shortcuts"])     # each tuned one, each seed
    assert (rows["steps_run"] > 0).all()
    seeds = costs[costs.chapter == "2 training seed"]
    from grokbook.chapters.settings import of
    assert sorted(seeds["seed"]) == sorted(of("test")["confirmation"][0][1:])
    from grokbook import preset   # the ledger says each run's width
    assert (seeds["d_model"] == preset("test").model.d_model).all()
