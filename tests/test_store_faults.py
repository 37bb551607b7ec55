"""Store faults and the `runs` command: nothing lost, every error one sentence."""
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, small
from grokbook.book.cli import main


def _as_user(user, cmd):
    """`cmd` run as another uid, seeing this interpreter's packages (a user site or a
    venv the other uid would not find on its own is put on its PYTHONPATH)."""
    if user is None:
        return cmd, {}
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    return (["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd],
            {"PYTHONPATH": os.pathsep.join(paths)})


def _cli(*argv, env=None, user=None):
    cmd, extra = _as_user(user, [sys.executable, "-m", "grokbook", *argv])
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1", **extra, **(env or {})})
    return r


def _no_traceback(r):
    assert "Traceback" not in r.stderr, r.stderr


@pytest.fixture
def trained(store):
    from grokbook.core.store import train
    return train(small(), store=store, progress=False)


def _tree(path: Path) -> dict:
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*"))}


# ---------------------------------------------------------------- runs rm
def test_runs_rm_refuses_anything_but_a_run_id(store, trained, tmp_path):
    sentinel = store.parent / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("keep")
    before = _tree(store)
    for arg in ("../..", "..", "", ".", "/", str(sentinel), "../sentinel", "runs", "*",
                trained.id + "/..", "ffffffffffff", "abc"):
        assert main(["runs", "rm", arg, "--store", str(store)]) == 1, arg
    assert _tree(store) == before and (sentinel / "keep.txt").read_text() == "keep"


def test_runs_rm_removes_one_run_by_prefix_and_says_so(store, trained, capsys):
    assert main(["runs", "rm", trained.id[:6], "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"removed run {trained.id}" in out
    assert not (store / "runs" / trained.id).exists()
    assert main(["runs", "rm", trained.id, "--store", str(store)]) == 1  # gone now: no "removed"
    assert "no run" in capsys.readouterr().err


def test_runs_rm_refuses_a_run_being_trained(store, trained, capsys):
    lock = store / "locks" / f"{trained.id}.lock"
    with open(lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # as a trainer holds it
        assert main(["runs", "rm", trained.id, "--store", str(store)]) == 1
        fcntl.flock(f, fcntl.LOCK_UN)
    assert "being trained" in capsys.readouterr().err
    assert (store / "runs" / trained.id / "COMPLETE").exists()


# ---------------------------------------------------------------- corrupt and unreadable runs
def _corrupt_cases(run_path: Path):
    ckpt = sorted((run_path / "ckpt").glob("*.pt"))[-1]
    return {
        "metrics": lambda: (run_path / "metrics.json").write_text("{garbage"),
        "empty info": lambda: (run_path / "info.json").write_text("{}"),
        "truncated checkpoint": lambda: ckpt.write_bytes(ckpt.read_bytes()[:100]),
    }


@pytest.mark.parametrize("case", ["metrics", "empty info", "truncated checkpoint"])
def test_a_corrupt_run_is_one_sentence_and_nothing_else_changes(store, trained, case):
    _corrupt_cases(trained.path)[case]()
    before = _tree(store)
    r = _cli("train", "--preset", "test", "--set", "train.max_steps=60", "--set",
             "train.eval_every=20", "--set", "train.checkpoint_every=20", "--store", str(store))
    assert r.returncode == 1 and "corrupt" in r.stderr and trained.id in r.stderr
    _no_traceback(r)
    ls = _cli("runs", "ls", "--store", str(store))
    assert ls.returncode == 0 and "corrupt" in ls.stdout
    assert _tree(store) == before


def test_store_that_is_a_file(tmp_path):
    f = tmp_path / "store"
    f.write_text("not a folder")
    for argv in (["runs", "ls"], ["runs", "path"], ["train", "--preset", "test", "--quiet"]):
        r = _cli(*argv, env={"GROKBOOK_STORE": str(f)})
        assert r.returncode == 1 and "is a file" in r.stderr, argv
        _no_traceback(r)
    assert f.read_text() == "not a folder"


def test_files_take_the_umask_so_a_shared_store_is_readable(trained):
    old = os.umask(0o022)
    os.umask(old)
    for p in trained.path.rglob("*"):
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~old, p


# -------- another user: a store shared read-only (needs root and setpriv to switch user)
def _other_user_can_run(user=65534) -> bool:
    """Root with setpriv, and the other uid can import what grokbook needs (on some
    machines the packages sit in a directory only root may read)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    cmd, extra = _as_user(user, [sys.executable, "-c", "import numpy, torch, grokbook"])
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, **extra})
    return r.returncode == 0


needs_other_user = pytest.mark.skipif(
    not _other_user_can_run(),
    reason="needs root, setpriv, and packages another uid can read")


@pytest.fixture
def shared_store():
    """A store readable by everyone, writable only by its owner (root)."""
    base = Path(tempfile.mkdtemp(prefix="grokbook-shared-", dir="/tmp"))
    os.chmod(base, 0o755)
    store = base / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "grokbook", "train", "--preset", "test",
                        "--set", "train.max_steps=40", "--set", "train.eval_every=20",
                        "--set", "train.checkpoint_every=20", "--store", str(store), "--quiet",
                        "--json"], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    yield store, json.loads(r.stdout)["run"]
    shutil.rmtree(base, ignore_errors=True)


@needs_other_user
def test_another_user_reads_a_shared_store(shared_store):
    store, rid = shared_store
    r = _cli("runs", "ls", "--store", str(store), user=65534)
    assert r.returncode == 0 and rid in r.stdout and "corrupt" not in r.stdout, r.stdout
    r = _cli("train", "--preset", "test", "--set", "train.max_steps=40", "--set",
             "train.eval_every=20", "--set", "train.checkpoint_every=20", "--store",
             str(store), "--quiet", "--json", user=65534)
    assert r.returncode == 0 and json.loads(r.stdout)["run"] == rid, r.stderr


@needs_other_user
def test_a_read_only_store_says_so_and_is_untouched(shared_store, tmp_path):
    store, rid = shared_store
    before = _tree(store)
    r = _cli("train", "--preset", "test", "--set", "train.max_steps=30", "--store", str(store),
             "--quiet", user=65534)
    assert r.returncode == 1 and "not writable" in r.stderr, r.stderr
    _no_traceback(r)
    assert _cli("runs", "path", "--store", str(store), user=65534).returncode == 0
    empty = Path(tempfile.mkdtemp(prefix="grokbook-ro-", dir="/tmp"))
    try:
        os.chmod(empty, 0o555)
        r = _cli("runs", "path", "--store", str(empty), user=65534)
        assert r.returncode == 0 and str(empty) in r.stdout, r.stderr
        r = _cli("runs", "ls", "--store", str(empty), user=65534)
        assert r.returncode == 0, r.stderr
        r = _cli("train", "--preset", "test", "--quiet", "--store", str(empty / "new"),
                 user=65534)
        assert r.returncode == 1 and "cannot create the run store" in r.stderr
        _no_traceback(r)
    finally:
        shutil.rmtree(empty, ignore_errors=True)
    assert _tree(store) == before


@needs_other_user
def test_an_unreadable_run_is_not_called_corrupt(shared_store):
    store, rid = shared_store
    for p in (store / "runs" / rid).rglob("*.json"):
        os.chmod(p, 0o600)
    r = _cli("train", "--preset", "test", "--set", "train.max_steps=40", "--set",
             "train.eval_every=20", "--set", "train.checkpoint_every=20", "--store",
             str(store), "--quiet", user=65534)
    assert r.returncode == 1 and "cannot read" in r.stderr and "not corrupt" in r.stderr
    _no_traceback(r)


# ---------------------------------------------------------------- paths
@pytest.mark.parametrize("extra,needle", [(["--step", "25"], "--step"),
                                          (["--probe", "foo"], "--probe"),
                                          (["--queries", "0"], "--queries")])
def test_paths_refuses_bad_arguments(store, trained, extra, needle):
    r = _cli("paths", "--preset", "test", "--set", "train.max_steps=60", "--set",
             "train.eval_every=20", "--set", "train.checkpoint_every=20", "--store",
             str(store), *extra)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    _no_traceback(r)
