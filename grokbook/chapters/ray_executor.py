"""Run a sweep's points as Ray tasks: a local Ray instance by default, a cluster beyond it.

``RayExecutor`` has the interface of ``grokbook.sweeps.LocalExecutor``::

    ex = RayExecutor()                         # local: ray.init(num_cpus=...)
    ex = RayExecutor(address="ray://head:10001")  # or "auto": an existing cluster
    results = ex.map(fn, items)                # [("ok", value) | ("error", message), ...]

``fn`` is a module-level function and each item a plain picklable dict or config; each item
is one Ray task. A point that fails (an exception, or its worker dies) comes back as
``("error", "<item>: <what happened>")`` and the other points are kept. Results are in the
order of ``items``.

Ray is optional (``pip install grokbook[ray]``); importing this module does not import it.
On a cluster every node needs grokbook installed (or pass a ``runtime_env`` that ships it,
e.g. ``{"pip": ["grokbook @ git+<repository url>"]}``); a local instance sees the driver's
``sys.path``, so a checkout that is not installed works too.
"""
from __future__ import annotations

import os
import sys
import traceback


def _describe(item, limit: int = 300) -> str:
    text = repr(item)
    return text if len(text) <= limit else text[:limit] + "..."


def _run_point(fn, item):
    """Runs in the worker; an exception becomes an ("error", ...) result, not a lost task."""
    try:
        return ("ok", fn(item))
    except BaseException as e:  # noqa: BLE001 - a failed point must not sink the sweep
        last = traceback.extract_tb(e.__traceback__)[-1:]
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        return ("error", f"{_describe(item)}: {type(e).__name__}: {e}{where}")


def _local_pythonpath() -> str:
    """The driver's own import directories (a checkout, the tests folder), for local workers."""
    base = os.path.realpath(sys.base_prefix)
    keep = []
    for p in [os.getcwd(), *sys.path]:
        p = os.path.realpath(p or os.getcwd())
        if os.path.isdir(p) and not p.startswith(base) and "site-packages" not in p \
                and p not in keep:
            keep.append(p)
    old = os.environ.get("PYTHONPATH")
    return os.pathsep.join(keep + ([old] if old else []))


class RayExecutor:
    """Map a function over sweep points with Ray; failed points are reported, others kept.

    ``address=None`` starts a local Ray instance with ``num_cpus`` CPUs (all by default)
    and shuts it down on ``shutdown()`` / leaving a ``with`` block; an address (``"auto"``,
    ``"ray://host:10001"``) joins a running cluster. ``cpus_per_task`` is each point's CPU
    reservation (Ray also sets the worker's OMP threads to it); ``gpus_per_task`` likewise.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_task: float = 1, gpus_per_task: float = 0,
                 runtime_env: dict | None = None, init_kwargs: dict | None = None):
        self.address, self.num_cpus = address, num_cpus
        self.cpus_per_task, self.gpus_per_task = cpus_per_task, gpus_per_task
        self.runtime_env, self.init_kwargs = runtime_env, dict(init_kwargs or {})
        self._started = False

    def _ray(self):
        try:
            import ray
        except ImportError as e:
            raise ImportError("RayExecutor needs Ray: `pip install ray` "
                              "(or `pip install grokbook[ray]`)") from e
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False,
                      "logging_level": "ERROR", **self.init_kwargs}
            env = dict(self.runtime_env or {})
            if self.address is None:
                env_vars = {"PYTHONPATH": _local_pythonpath(), **env.get("env_vars", {})}
                env["env_vars"] = env_vars
                ray.init(num_cpus=self.num_cpus, runtime_env=env, **kwargs)
            else:
                ray.init(address=self.address, runtime_env=env or None, **kwargs)
            self._started = True
        return ray

    def map(self, fn, items) -> list:
        """``[("ok", fn(item)) or ("error", message naming the item)]`` in item order."""
        items = list(items)
        if not items:
            return []
        ray = self._ray()
        task = ray.remote(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                          max_retries=0)(_run_point)
        refs = [task.remote(fn, item) for item in items]
        results = []
        for item, ref in zip(items, refs):
            try:
                results.append(ray.get(ref))
            except Exception as e:  # the worker died, or the task could not run at all
                results.append(("error", f"{_describe(item)}: {type(e).__name__}: "
                                         f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}"))
        return results

    def shutdown(self):
        """Stop the Ray instance this executor started (a joined cluster is only left)."""
        if self._started:
            import ray
            ray.shutdown()
            self._started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        return False


def _train_config(cfg_dict: dict, store: str) -> str:
    """A Ray task: train one config into the store (a folder every node sees)."""
    from grokbook.core.config import Config
    from grokbook.core.store import train
    return train(Config.from_dict(cfg_dict), store=store, progress=False).id


class RayRunPool(RayExecutor):
    """A pool for ``core.plan.resolve``: each run of the plan one Ray task, as many at once
    as the cluster has CPUs (``cpus_per_task`` each). The store must be a folder every
    node sees (a shared file system); a local instance shares this machine's."""

    def __init__(self, root, capacity: int | None = None, **kw):
        super().__init__(**kw)
        self.root, self.running = str(root), {}
        ray = self._ray()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = capacity or max(1, int(cpus // max(self.cpus_per_task, 1e-9)))
        self.task = ray.remote(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                               max_retries=0)(_train_config)

    @property
    def busy(self) -> int:
        return len(self.running)

    def submit(self, key: str, cfg) -> None:
        self.running[self.task.remote(cfg.to_dict(), self.root)] = key

    def wait(self) -> list:
        """[(key, error or None)] of the tasks that ended."""
        import ray
        ready, _ = ray.wait(list(self.running), num_returns=1)
        out = []
        for ref in ready:
            key = self.running.pop(ref)
            try:
                ray.get(ref)
                out.append((key, None))
            except Exception as e:  # the task raised, or its worker died
                out.append((key, e))
        return out

    def close(self) -> None:
        import ray
        for ref in list(self.running):
            ray.cancel(ref, force=True)
        self.running.clear()
        self.shutdown()
