"""grokbook: a small library that reproduces grokking of two-hop composition at laptop scale.

Layers, imports pointing only down: ``core`` (config, data, models, training, run store)
< ``analysis`` (definitions, lens, patching, measures) < ``chapters`` (one experiment per
chapter, the study's numbers) < ``book`` (pipeline, charts, widgets, command line).
"""
from .core import __version__  # noqa: F401

from .core.config import Config, ConfigError, preset  # noqa: E402,F401
from .core.data import build_dataset  # noqa: E402,F401
from .core.store import Run, RunStoreError, load_run, train  # noqa: E402,F401
