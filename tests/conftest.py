import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh, empty run store for one test."""
    path = tmp_path / "store"
    monkeypatch.setenv("GROKBOOK_STORE", str(path))
    return path


def small(arch: str = "trm", **overrides):
    """The test preset (the subject, a TRM, unless ``arch`` says "dense" or "looped"),
    shortened further for unit tests."""
    from grokbook import preset
    base = {"train.max_steps": 60, "train.eval_every": 20, "train.checkpoint_every": 20}
    base.update(overrides)
    return preset("test", arch=arch, **base)
