"""The book pipeline: papermill executes the chapters, Jupyter Book 1 renders them.

``build_book(preset)``:

1. reads the chapters from ``_toc.yml`` (``book/NN_name``); a listed notebook that does
   not exist yet is skipped with a warning and dropped from the staged table of contents;
2. executes each chapter with papermill (``preset`` injected after its ``parameters``
   cell, working directory ``book/``) into ``<out>/executed/book/NN_name.ipynb``, and adds
   provenance (notebook metadata ``grokbook`` and a visible footer cell);
   ``executed_dir=DIR`` takes already-executed notebooks (e.g. ``results/gpu``) from DIR
   and executes only the chapters missing there;
3. stages ``_config.yml``, ``_toc.yml``, ``book/intro.md``, the executed notebooks and
   the vega bundle (``_static/vega-bundle.js``) in ``<out>/stage`` and builds HTML with
   Jupyter Book 1 (``-W -n --keep-going``) into ``<out>/html``.

A chapter whose executed copy was made from the same notebook, preset and library code
is not executed again, and staged files keep their times when unchanged, so a rebuild
costs little more than Jupyter Book itself. A failing chapter stops the build; the
message names the chapter, the cell and the error.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from ..core import __version__
from ..core import progress
from ..core.config import preset as get_preset
from ..core.store import WORKERS_ENV, device_name
from ..core.train import resolve_device, thread_count
from .charts import write_bundle

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "python3"


def find_root(root=None) -> Path:
    """The book to build: ``root`` if given, else the current directory or the nearest
    parent holding a ``_toc.yml`` -- the book where the user stands, not the copy the
    package was installed from."""
    if root is not None:
        r = Path(root).expanduser().absolute()
        if not (r / "_toc.yml").is_file():
            raise ValueError(f"--root: {r} has no _toc.yml; give the book's folder")
        return r
    here = Path.cwd()
    for d in (here, *here.parents):
        if (d / "_toc.yml").is_file() and (d / "book").is_dir():
            return d
    raise ValueError(f"no book here: neither {here} nor a parent holds _toc.yml and book/; "
                     f"run from the book's folder or pass --root")


class ChapterError(RuntimeError):
    """A chapter failed to execute. The message names the chapter, the cell and the error."""


def log(msg: str) -> None:
    print(f"grokbook book: {msg}", flush=True)


# ---------------------------------------------------------------- chapters
def toc_entries(root: Path) -> list[str]:
    """Files listed in _toc.yml (root first), as written there: ``book/01_data``."""
    import yaml
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                found.append(item["file"])
            walk(item.get("sections"))
            for part in item.get("parts", []) or []:
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    return found


def chapter_list(root: Path, chapters=None) -> tuple[list[str], list[str]]:
    """(notebook chapters to build, listed ones that do not exist yet)."""
    entries = [e for e in toc_entries(root) if re.match(r"book/\d\d_", e)]
    if chapters:
        wanted = [str(c).strip() for c in chapters]
        unknown = [c for c in wanted if not any(Path(e).name.startswith(c) for e in entries)]
        if unknown:
            raise ValueError(f"--chapters: no chapter {', '.join(unknown)} in _toc.yml; "
                             f"listed: {', '.join(Path(e).name for e in entries)}")
        entries = [e for e in entries if any(Path(e).name.startswith(c) for c in wanted)]
    present = [e for e in entries if (Path(root) / f"{e}.ipynb").exists()]
    return present, [e for e in entries if e not in present]


# ---------------------------------------------------------------- kernel and provenance
def ensure_kernel(out: Path) -> str:
    """A kernel spec named ``python3`` that runs *this* interpreter, first on JUPYTER_PATH."""
    kdir = Path(out) / "jupyter" / "kernels" / KERNEL
    kdir.mkdir(parents=True, exist_ok=True)
    # the kernel's own log stays quiet below errors: its start-up notice about the local TCP
    # transport is not the build's business (cell errors reach the build as they are)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     "--IPKernelApp.log_level=ERROR"],
            "display_name": "Python 3 (grokbook)", "language": "python"}
    (kdir / "kernel.json").write_text(json.dumps(spec, indent=1))
    paths = os.environ.get("JUPYTER_PATH", "").split(os.pathsep)
    first = str(Path(out) / "jupyter")
    if first not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([first] + [p for p in paths if p])
    return KERNEL


def git_commit(root: Path) -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def code_digest(root: Path, notebook: Path, preset: str) -> str:
    """What an executed chapter depends on: its notebook, the preset, the library code."""
    h = hashlib.sha256(preset.encode())
    h.update(Path(notebook).read_bytes())
    lib = Path(__file__).resolve().parents[1]
    for p in sorted(lib.rglob("*.py")):
        h.update(str(p.relative_to(lib)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def provenance(preset: str, wall: float, root: Path) -> dict:
    import torch
    return {"preset": preset, "device": device_name(resolve_device("auto")),
            "torch": torch.__version__, "grokbook": __version__,
            "commit": git_commit(root), "wall_seconds": round(wall, 1)}


FOOTER_TAG = "grokbook-provenance"
CELL_TIMEOUT = 3 * 3600   # a cell that runs longer is a hung kernel, reported, not waited on


def add_provenance(path: Path, info: dict, digest: str | None = None) -> None:
    """Notebook metadata ``grokbook`` and a visible footer cell with the same facts."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    meta = dict(info)
    if digest:
        meta["digest"] = digest
    nb.metadata["grokbook"] = meta
    nb.cells = [c for c in nb.cells if FOOTER_TAG not in c.get("metadata", {}).get("tags", [])]
    for c in nb.cells:  # papermill's injected cell is plumbing, like the parameters cell
        tags = c.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            c.metadata["tags"] = tags + ["remove-cell"]
    text = (f"*Executed with preset `{info['preset']}` on {info['device']}; "
            f"torch {info['torch']}, grokbook {info['grokbook']}, commit `{info['commit']}`; "
            f"this chapter took {info['wall_seconds']:.1f} s.*")
    cell = nbformat.v4.new_markdown_cell("---\n" + text)
    cell.metadata["tags"] = [FOOTER_TAG]
    nb.cells.append(cell)
    nbformat.write(nb, path)


def _cached(path: Path, digest: str) -> bool:
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text())["metadata"]["grokbook"].get("digest") == digest
    except (OSError, ValueError, KeyError):
        return False


class _ChapterEnv:
    """The environment a chapter's runs see: progress reported to ``feed``, runs spread
    over the cores one thread each (unless the user chose), restored on exit."""
    KEYS = (progress.ENV, WORKERS_ENV, "OMP_NUM_THREADS")

    def __init__(self, feed: Path):
        self.feed = feed

    def __enter__(self):
        threads = thread_count()  # a bad GROKBOOK_THREADS is refused before anything is set
        self.saved = {k: os.environ.get(k) for k in self.KEYS}
        os.environ[progress.ENV] = str(self.feed)
        os.environ.setdefault(WORKERS_ENV, str(os.cpu_count() or 1))
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():  # the parent's environment as it was
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.feed.unlink(missing_ok=True)


def train_plan(preset: str, entries: list[str], out: Path, workers: int | None = None,
               pool=None) -> dict:
    """Train, in one pool of worker processes and largest predicted cost first, every run
    of the book's plan (``chapters.plans``) that the chapters ``entries`` read, fine-tunes
    and conditional controls included, so that executing a chapter only reads the store.
    Prints the plan's summary first, then a line with the time left as each run ends. A
    run that fails here is reported; its chapter says more. Returns what it did: wall
    seconds, runs trained, and the seconds it predicted for them (the ETA's error)."""
    from ..chapters.plans import book_plan, plan_summary, plan_table
    from ..core.plan import FAILED, TRAINED, predict, resolve
    from ..core.store import default_workers
    chapters = sorted({Path(e).name[:2] for e in entries})
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with _ChapterEnv(out / ".plan.progress.jsonl"):
        workers = workers or default_workers()
        table = plan_table(preset, chapters)
        if not len(table):
            return {"seconds": time.perf_counter() - t0, "trained": 0}
        s = plan_summary(table)
        left = s["seconds_to_train"] / max(1, workers)
        log(f"the plan: {s['runs']} runs, {s['stored']} in the store, {s['to_train']} to "
            f"train, at most about {_minutes(left)} on {workers} worker(s) (every run at "
            f"its full budget; a run that reaches its stop rule ends sooner)"
            + (f"; {s['waiting']} more run(s) wait on those results (at most "
               f"{_minutes(s['seconds_waiting_at_most'] / max(1, workers))} more)"
               if s["waiting"] else ""))
        if not s["to_train"] and not s["waiting"]:
            return {"seconds": time.perf_counter() - t0, "trained": 0, "runs": s["runs"]}
        predicted = {r.run: r.seconds for r in table.itertuples() if r.seconds}
        state = {"done": 0, "ratio": [], "left": s["seconds_to_train"]}

        def report(o, done, total):
            if o.status not in (TRAINED, FAILED):
                return
            state["done"] += 1
            guess = predicted.get(o.run_id) or (predict(o.config, measure=False)
                                                if o.config is not None else None)
            took = o.run.info["wall_seconds"] if o.run is not None else None
            if guess and took:
                state["ratio"].append(took / guess)
                state["left"] = max(0.0, state["left"] - guess)
            ratio = sorted(state["ratio"])[len(state["ratio"]) // 2] if state["ratio"] else 1
            log(f"run {state['done']} done: {o.name} ({o.status}"
                + (f", {took:.0f} s, predicted {guess:.0f} s" if took and guess else "")
                + f"); about {_minutes(state['left'] * ratio / max(1, workers))} left")

        outcomes = resolve(book_plan(preset, chapters), train=True, workers=workers,
                           pool=pool, report=report,
                           cost=lambda c: predict(c, measure=False) or 0.0)
    failed = [o for o in outcomes.values() if o.status == FAILED]
    for o in failed[:5]:
        log(f"warning: {o.name} failed ({o.reason}); its chapter will say more")
    wall = time.perf_counter() - t0
    log(f"trained the plan: {state['done']} run(s) in {_minutes(wall)}")
    return {"seconds": wall, "trained": state["done"], "runs": s["runs"],
            "predicted_seconds": s["seconds_to_train"] / max(1, workers),
            "predicted_waiting_at_most": s["seconds_waiting_at_most"] / max(1, workers),
            "workers": workers, "failed": len(failed)}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def execute_chapter(root: Path, entry: str, preset: str, dest: Path, kernel: str,
                    force: bool = False, progress_every: float = 30.0) -> float:
    """papermill one chapter into ``dest``; returns wall seconds (0 when reused)."""
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    src = Path(root) / f"{entry}.ipynb"
    digest = code_digest(root, src, preset)
    if not force and _cached(dest, digest):
        log(f"{entry}: unchanged since its last execution, reused")
        return 0.0
    dest.parent.mkdir(parents=True, exist_ok=True)
    log(f"{entry}: executing with preset {preset!r} ...")
    t0 = time.perf_counter()
    # the kernel inherits this process's environment: its runs report to the feed;
    # chapters that train several runs spread them over the cores, one thread each;
    # analysis runs on as many threads as training (two busy threads collapse when
    # anything else shares the cores), unless the user chose
    try:
        with _ChapterEnv(dest.parent / f".{dest.stem}.progress.jsonl") as env:
            with progress.Watcher(env.feed, f"grokbook book: {entry}: ", every=progress_every):
                pm.execute_notebook(str(src), str(dest), parameters={"preset": preset},
                                    kernel_name=kernel, cwd=str(src.parent),
                                    progress_bar=False, execution_timeout=CELL_TIMEOUT)
    except pm.PapermillExecutionError as e:
        raise ChapterError(_describe_failure(entry, dest, e)) from None
    except DeadKernelError:
        raise ChapterError(_describe_dead_kernel(entry, src, dest)) from None
    wall = time.perf_counter() - t0
    add_provenance(dest, provenance(preset, wall, root), digest)
    log(f"{entry}: done in {wall:.1f} s")
    return wall


def _describe_dead_kernel(entry: str, src: Path, dest: Path) -> str:
    """The kernel process died (out of memory, os._exit, a crash in native code): the cell
    that was running is the last one papermill started. It is named by its index in the
    chapter's own notebook."""
    where, first = "an unknown cell", ""
    try:
        import nbformat
        ran = nbformat.read(dest, as_version=4)
        dead = [c.source for c in ran.cells if c.cell_type == "code"
                and c.metadata.get("papermill", {}).get("start_time")][-1]
        own = nbformat.read(src, as_version=4)
        i = next(i for i, c in enumerate(own.cells) if c.source == dead)
        where, first = f"cell {i}", f"\n    first line of the cell: {dead.strip().splitlines()[0]}"
    except Exception:  # the partial output may be unreadable; the error still names the chapter
        pass
    return (f"chapter {entry} failed at {where}: the kernel died (out of memory, a crash in "
            f"native code, or an exit call){first}\n"
            f"    the partly executed notebook is at {dest}")


def _describe_failure(entry: str, dest: Path, e) -> str:
    source = ""
    try:  # papermill puts an error banner first: find the cell by its execution count
        import nbformat
        nb = nbformat.read(dest, as_version=4)
        hits = [c for c in nb.cells if c.cell_type == "code" and e.exec_count is not None
                and c.get("execution_count") == e.exec_count]
        lines = hits[0].source.strip().splitlines() if hits else []
        source = lines[0] if lines else ""
    except Exception:  # the partial output may be unreadable; the error still names the cell
        pass
    where = f"cell {e.cell_index}" + (f" (execution count {e.exec_count})" if e.exec_count else "")
    first = f"\n    first line of the cell: {source}" if source else ""
    return (f"chapter {entry} failed at {where}: {e.ename}: {e.evalue}{first}\n"
            f"    the partly executed notebook is at {dest}")


# ---------------------------------------------------------------- the static page
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
LIVE_NOTE = ("*An interactive widget stands here when this chapter runs in Jupyter or Colab "
             "(the launch button above); what it showed by default is below.*")


def _widget_tree(state: dict, model_id: str) -> list[dict]:
    """The models a widget view shows, itself and its children, depth first."""
    seen, out, todo = set(), [], [model_id]
    while todo:
        mid = todo.pop()
        if mid in seen or mid not in state:
            continue
        seen.add(mid)
        out.append(state[mid])
        for child in state[mid].get("state", {}).get("children", []) or []:
            todo.append(str(child).removeprefix("IPY_MODEL_"))
    return out


def static_notebook(data: bytes) -> bytes:
    """The executed notebook as the static page shows it: no widget views (their viewer
    would come from a CDN), but what each interactive widget displayed by default (its
    captured output, e.g. an Altair chart) with a note; progress bars are dropped.
    The executed notebook itself keeps its widgets for Jupyter and Colab."""
    nb = json.loads(data)
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = bool(state)
    for cell in nb.get("cells", []):
        if "outputs" not in cell:
            continue
        outputs = []
        for o in cell["outputs"]:
            view = o.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(o)
                continue
            changed = True
            tree = _widget_tree(state, view.get("model_id", ""))
            if any("Progress" in m.get("model_name", "") for m in tree):
                continue  # a tqdm bar: nothing to see once the run is done
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": {"text/markdown": LIVE_NOTE}})
            for m in tree:
                if m.get("model_name") == "OutputModel":
                    outputs += m.get("state", {}).get("outputs", [])
        cell["outputs"] = outputs
    if not changed:
        return data
    nb.get("metadata", {}).pop("widgets", None)
    return json.dumps(nb, indent=1, ensure_ascii=False).encode()


# ---------------------------------------------------------------- staging and HTML
def _put(src: Path | bytes, dest: Path) -> None:
    """Copy only when the content differs, so Sphinx sees unchanged files as unchanged."""
    data = src if isinstance(src, bytes) else Path(src).read_bytes()
    if dest.exists() and dest.read_bytes() == data:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


def stage(root: Path, out: Path, executed: dict[str, Path], missing: list[str]) -> Path:
    """A source tree for Jupyter Book: config, toc (without missing chapters), intro,
    executed notebooks, the vega bundle."""
    import yaml
    st = Path(out) / "stage"
    st.mkdir(parents=True, exist_ok=True)
    _put(Path(root) / "_config.yml", st / "_config.yml")
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    drop = set(missing)

    def prune(items):
        kept = []
        for item in items or []:
            if item.get("file") in drop:
                continue
            if "sections" in item:
                item["sections"] = prune(item["sections"])
            kept.append(item)
        return kept

    toc["chapters"] = prune(toc.get("chapters"))
    if not toc["chapters"]:
        del toc["chapters"]
    _put(yaml.safe_dump(toc, sort_keys=False).encode(), st / "_toc.yml")
    for f in [*sorted((Path(root) / "book").glob("*.md")),
              *sorted((Path(root) / "book").glob("*.bib"))]:   # pages and the bibliography
        _put(f, st / "book" / f.name)
    for entry, path in executed.items():
        _put(static_notebook(Path(path).read_bytes()), st / f"{entry}.ipynb")
    wanted = {f"{e}.ipynb" for e in executed}
    for old in (st / "book").glob("*.ipynb"):  # chapters no longer built
        if f"book/{old.name}" not in wanted:
            old.unlink()
    write_bundle(st / "_static")
    return st


def build_html(st: Path, html: Path) -> int:
    """Jupyter Book 1 with -W -n --keep-going, in a subprocess (Sphinx keeps global state)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from jupyter_book.sphinx import build_sphinx\n"
        f"src, out = Path({str(st)!r}), Path({str(html)!r})\n"
        "r = build_sphinx(src, out, noconfig=True, path_config=str(src / '_config.yml'),\n"
        "    confoverrides={'external_toc_path': (src / '_toc.yml').as_posix(),\n"
        "                   'nitpicky': True, 'latex_individualpages': False},\n"
        "    builder='html', warningiserror=True, keep_going=True, quiet=True)\n"
        "if r != 0: print(f'jupyter-book build failed: {r!r}', file=sys.stderr)\n"
        "sys.exit(0 if r == 0 else 1)\n")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-c", code], cwd=st, env=env).returncode


# ---------------------------------------------------------------- the whole pipeline
def _given_copy(given, entry: str):
    """The executed notebook of ``entry`` under ``--executed-dir`` (None: not there)."""
    if given is None:
        return None
    return next((p for p in (given / f"{entry}.ipynb", given / (Path(entry).name + ".ipynb"))
                 if p.exists()), None)


def _will_execute(root: Path, entry: str, preset: str, out: Path, given, force: bool) -> bool:
    if _given_copy(given, entry) is not None:
        return False
    dest = out / "executed" / f"{entry}.ipynb"
    return force or not _cached(dest, code_digest(root, Path(root) / f"{entry}.ipynb", preset))


def build_book(preset: str = "cpu", chapters=None, executed_dir=None, html: bool = True,
               root=None, out=None, force: bool = False, train_only: bool = False,
               pool=None) -> int:
    """Train the book's plan, execute the chapters (or take them from ``executed_dir``) and
    build the HTML book; ``train_only`` stops after training; ``pool`` trains elsewhere
    (e.g. ``chapters.ray_executor.RayRunPool``).

    Returns 0 on success, 1 when a chapter or the HTML build fails (the message names
    the chapter, its failing cell and the error).
    """
    get_preset(preset)  # an unknown preset is a ConfigError before anything runs
    root = Path(root or ROOT).resolve()
    out = Path(out or root / "_build").resolve()
    t_all = time.perf_counter()
    log(f"building the book in {root} (preset {preset!r})")
    present, missing = chapter_list(root, chapters)
    for entry in missing:
        log(f"warning: {entry}.ipynb is listed in _toc.yml but does not exist yet; skipped")
    if chapters:  # a partial build renders only the chapters asked for
        listed = [e for e in toc_entries(root) if re.match(r"book/\d\d_", e)]
        missing = missing + [e for e in listed if e not in present and e not in missing]
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    kernel = ensure_kernel(out)
    executed: dict[str, Path] = {}
    given = Path(executed_dir).resolve() if executed_dir else None
    record = BuildRecord(out, preset)
    ahead = [e for e in present if _will_execute(root, e, preset, out, given, force)]
    if ahead or train_only:
        record.put("plan", train_plan(preset, ahead or present, out, pool=pool))
    if train_only:
        return 0
    for entry in present:
        if given is not None:
            hit = _given_copy(given, entry)
            if hit is not None:
                log(f"{entry}: rendering the executed notebook {hit}")
                executed[entry] = hit
                continue
            log(f"{entry}: not in {given}; executing it here")
        dest = out / "executed" / f"{entry}.ipynb"
        try:
            wall = execute_chapter(root, entry, preset, dest, kernel, force=force)
            record.chapter(entry, wall)
        except ChapterError as e:
            print(f"grokbook book: error: {e}", file=sys.stderr, flush=True)
            return 1
        executed[entry] = dest
    if not html:
        log(f"executed {len(executed)} chapter(s) in {time.perf_counter() - t_all:.1f} s")
        return 0
    st = stage(root, out, executed, missing)
    t_html = time.perf_counter()
    rc = build_html(st, out / "html")
    if rc != 0:
        print("grokbook book: error: the Jupyter Book build failed (see the warnings above)",
              file=sys.stderr, flush=True)
        return 1
    record.put("html_seconds", time.perf_counter() - t_html)
    record.put("build_seconds", time.perf_counter() - t_all)
    log(f"HTML in {time.perf_counter() - t_html:.1f} s; whole build "
        f"{time.perf_counter() - t_all:.1f} s: {out / 'html' / 'index.html'}")
    return 0


RECORD_ENV = "GROKBOOK_BUILD_RECORD"


class BuildRecord:
    """The build's own timing record, ``<out>/build_record.json``: what training the plan
    took, each chapter's execution (0 s: reused), the HTML, the machine. The kernels see its
    path in ``$GROKBOOK_BUILD_RECORD``, so the appendix *Cost and provenance* renders it."""

    def __init__(self, out: Path, preset: str):
        import torch
        self.path = Path(out) / "build_record.json"
        self.data = {"preset": preset, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime()),
                     "machine": device_name(resolve_device("auto")),
                     "grokbook": __version__, "torch": torch.__version__, "chapters": {}}
        os.environ[RECORD_ENV] = str(self.path)
        self._write()

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self._write()

    def chapter(self, entry: str, seconds: float) -> None:
        self.data["chapters"][entry] = {"seconds": round(seconds, 1), "reused": seconds == 0}
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1, default=float))
