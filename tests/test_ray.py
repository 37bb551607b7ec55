"""RayExecutor on a local Ray instance: points as tasks, a failed point reported, others kept."""
import pytest

ray = pytest.importorskip("ray")

from grokbook.chapters.ray_executor import RayExecutor  # noqa: E402


def dataset_counts(item: dict) -> dict:
    """A sweep point: the test preset with overrides -> its dataset's sizes."""
    from grokbook import build_dataset, preset
    cfg = preset("test", **item)
    return {k: v for k, v in build_dataset(cfg.data, cfg.seed).summary().items()
            if isinstance(v, int)}


def train_point(item: dict) -> dict:
    """A sweep point that trains: the test preset for a few steps into the item's store."""
    from grokbook import preset, train
    store = item.pop("store")
    run = train(preset("test", **item), store=store, progress=False)
    return {"run": run.id, "steps": run.steps}


@pytest.fixture(scope="module")
def executor():
    ex = RayExecutor(num_cpus=2)
    yield ex
    ex.shutdown()
    assert not ray.is_initialized()


def test_failed_point_is_reported_and_the_others_kept(executor):
    items = [{"data.phi": 2.0}, {"data.n_relations": -1}, {"data.phi": 4.0}]
    results = executor.map(dataset_counts, items)
    assert [r[0] for r in results] == ["ok", "error", "ok"]
    assert "data.n_relations" in results[1][1] and "ConfigError" in results[1][1]
    # the same numbers as in this process, in item order
    assert results[0][1] == dataset_counts(dict(items[0]))
    assert results[2][1]["train_inferred"] > results[0][1]["train_inferred"]
    assert executor.map(dataset_counts, []) == []


def test_points_train_into_a_store(executor, tmp_path):
    items = [{"store": str(tmp_path), "train.max_steps": 20, "train.eval_every": 10,
              "train.checkpoint_every": 10, "seed": s} for s in (0, 1)]
    results = executor.map(train_point, items)
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert {r[1]["steps"] for r in results} == {20}
    assert len({r[1]["run"] for r in results}) == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == \
        sorted(r[1]["run"] for r in results)


def test_a_plan_trains_on_a_local_ray_instance(tmp_path):
    """Chapter 6's test-preset plan (three runs, then fine-tunes built from them) through
    ``RayRunPool``: every entry settled, the same run ids a local build names."""
    from grokbook.chapters import transfer
    from grokbook.chapters.ray_executor import RayRunPool
    from grokbook.core.plan import FAILED, MISSING, TRAINED, resolve
    store = tmp_path / "store"
    store.mkdir()
    plan = transfer.plan("test")
    pool = RayRunPool(store, num_cpus=2)
    try:
        out = resolve(plan, store, pool=pool)
    finally:
        pool.close()
    assert not [o for o in out.values() if o.status in (FAILED, MISSING)]
    tune = out["06/seed 0/finetune/grokked"]
    assert tune.status == TRAINED
    assert tune.run.config.parent.startswith(out["06/seed 0/parent"].run_id)
    again = resolve(plan, store, train=False)     # what Ray trained is the plan's runs
    assert {n: o.run_id for n, o in again.items()} == {n: o.run_id for n, o in out.items()}
