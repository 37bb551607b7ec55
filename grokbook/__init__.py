"""grokbook: a small library that reproduces grokking of two-hop composition at laptop scale."""
__version__ = "0.1.0"

from .config import Config, ConfigError, preset  # noqa: E402,F401
from .data import build_dataset  # noqa: E402,F401
from .runs import Run, RunStoreError, load_run, train  # noqa: E402,F401
