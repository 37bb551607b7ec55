"""A training worker: ``python -m grokbook.core.worker JOB.json`` trains one group of runs
into the store (``core.store._train_in_processes`` starts it)."""
import sys

from .store import worker_main

if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
