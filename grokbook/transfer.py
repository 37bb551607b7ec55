"""New knowledge after grokking: transfer sets (fine-tuning sets and probes) and their lens.

He et al. (2026) fine-tune a grokked model on facts it has never seen and ask whether
the circuit it grew for two-hop composition (Wang et al. 2024) composes them too. The
transfer set here follows their recipe, scaled to the graph and seeded:

- **New atomic facts** sit on (head, relation) pairs the graph left free (each head uses
  ``out_degree`` of the ``n_relations`` relations, so ``out_degree < n_relations`` is
  required). They reuse the entities and relations of the parent's vocabulary. A share of
  them (``transfer.chain_fraction``, half in the study) is built as chains a -> b -> t:
  the tail of one new fact is the head of another, so new+new compositions exist.
- **Replay** (old knowledge, so it is not forgotten) is a closure: old ID atomic facts in
  a seeded order, each with every two-hop fact of the parent's training set that uses it
  as hop 1 or hop 2, until ``transfer.replay`` items are reached (the study: 220 atomic
  + the 7,780 two-hop facts using them = 8,000).
- **Fine-tuning set** = replay + new atomic facts. As in the study, no two-hop fact that
  involves a new fact is ever trained: composing them is the test.
- **Probes**: ``new_atomic`` (were the new facts learned), ``new_hop1_old_hop2`` (new fact
  as hop 1, old ID fact as hop 2), ``old_hop1_new_hop2`` (old ID fact, then the new one),
  ``new_new`` (both hops new), ``old_inferred`` / ``old_atomic`` (old facts that are *not*
  replayed: forgetting), and the parent's own probes under their usual names.

Every two-hop query has one answer: the (head, relation) pairs of old and new facts never
overlap, so the bridge and the tail are determined.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .config import ConfigError
from .data import Dataset, _concat, _rng, _table, _take, build_dataset, n_rows

TRANSFER_SETS = ("new_knowledge",)
PROBE_KINDS = ("new_atomic", "new_hop1_old_hop2", "old_hop1_new_hop2", "new_new",
               "old_inferred", "old_atomic")
TWO_HOP_KINDS = ("new_hop1_old_hop2", "old_hop1_new_hop2", "new_new", "old_inferred")
PARENT_PROBES = ("test_inferred_iid", "test_inferred_ood")

# generator purposes, apart from grokbook.data's (0..5)
_NEW, _REPLAY, _TPROBE = 20, 21, 22

# The study's transfer numbers (TRM, paper scale, first ~39k fine-tuning steps; see
# REFERENCE). Accuracy is the highest value reported; the bridge is the lenient rule.
STUDY_TRANSFER = pd.DataFrame([
    ("new_atomic", 1.0, np.nan, np.nan, "about 1.0 within 2-4k fine-tuning steps"),
    ("new_hop1_old_hop2", 1.0, np.nan, np.nan, "reaches 1.0"),
    ("old_hop1_new_hop2", 0.11, np.nan, np.nan, "stays at 0 (at most 0.11)"),
    ("new_new", 0.036, 0.97, 0.99, "at most 0.036; bridge found in 97-99% of cases"),
], columns=["probe", "study_accuracy", "study_bridge_low", "study_bridge_high", "study_note"])


@dataclass
class TransferDataset(Dataset):
    """A ``Dataset`` (same vocabulary as the parent) with the new facts and the replay."""
    new: dict = field(default_factory=dict)      # the new atomic facts (query table)
    replay: dict = field(default_factory=dict)   # the old items replayed in fine-tuning


# ---------------------------------------------------------------- sizes and validation
def sizes(cfg) -> dict:
    """Sizes of the transfer set of ``cfg`` (0 in ``cfg.transfer`` means: scaled)."""
    d, tr = cfg.data, cfg.transfer
    old = d.n_entities * d.out_degree
    free = d.n_entities * (d.n_relations - d.out_degree)
    # the study: 2,000 new facts on 40,000 old (5%); at least 400 so every probe has
    # hundreds of queries; at most half the free pairs (heads keep free relations) unless
    # that leaves fewer than 200, then at most all of them
    room = free // 2 if free // 2 >= 200 else free
    new = tr.new_facts or min(max(round(0.05 * old), 400), room)
    chain = 2 * (int(round(tr.chain_fraction * new)) // 2)
    return dict(old_atomic=old, free_pairs=free, new_facts=new, chain_facts=chain,
                chains=chain // 2, replay=tr.replay or 4 * new)


def validate_transfer(cfg) -> None:
    """Raise ConfigError naming the field that makes the transfer set of ``cfg`` impossible."""
    d, tr = cfg.data, cfg.transfer
    if cfg.finetune not in TRANSFER_SETS:
        raise ConfigError(f"finetune: {cfg.finetune!r} is not allowed; allowed: '' (no "
                          f"fine-tuning), {', '.join(TRANSFER_SETS)}")
    if d.from_json:
        raise ConfigError(f"data.from_json: {d.from_json!r} is not allowed with finetune; "
                          "transfer sets are built from a generated graph (leave it empty)")
    if d.out_degree >= d.n_relations:
        raise ConfigError(
            f"data.out_degree: {d.out_degree} is not allowed with finetune; allowed: less than "
            f"data.n_relations ({d.n_relations}). New facts need (head, relation) pairs the "
            f"graph left unused, and with out_degree == n_relations every head uses every "
            f"relation. Lower data.out_degree or raise data.n_relations.")
    if not 0 <= tr.chain_fraction <= 1:
        raise ConfigError(f"transfer.chain_fraction: {tr.chain_fraction!r} is not allowed; "
                          "allowed: 0 to 1")
    for name in ("new_facts", "replay", "probe_cap"):
        if getattr(tr, name) < 0:
            raise ConfigError(f"transfer.{name}: {getattr(tr, name)!r} is not allowed; "
                              "allowed: 0 (scaled to the graph) or a positive count")
    s = sizes(cfg)
    if not 0 < s["new_facts"] <= s["free_pairs"]:
        raise ConfigError(f"transfer.new_facts: {s['new_facts']} is not allowed; allowed: 1 to "
                          f"{s['free_pairs']} (the free (head, relation) pairs of this graph)")
    if cfg.parent:
        rid, at, step = cfg.parent.partition("@")
        if not rid or (at and not step.isdigit()):
            raise ConfigError(f"parent: {cfg.parent!r} is not allowed; allowed: '<run id>@<step>'")


# ---------------------------------------------------------------- building the set
def _join(first: dict, second: dict) -> dict:
    """Every composition of a fact (h, r1, b) in ``first`` with a fact (b, r2, t) in ``second``."""
    order = np.argsort(second["h"], kind="stable")
    heads = second["h"][order]
    lo = np.searchsorted(heads, first["t"], "left")
    counts = np.searchsorted(heads, first["t"], "right") - lo
    i1 = np.repeat(np.arange(n_rows(first)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    i2 = order[np.repeat(lo, counts) + offset]
    return _table(h=first["h"][i1], r1=first["r1"][i1], r2=second["r1"][i2],
                  b=first["t"][i1], t=second["t"][i2])


def new_facts(cfg, atomic: dict) -> dict:
    """New atomic facts on free (head, relation) pairs; the first ``chain_facts`` form chains."""
    d, s = cfg.data, sizes(cfg)
    used = np.zeros((d.n_entities, d.n_relations), dtype=bool)
    used[atomic["h"], atomic["r1"]] = True
    free_h, free_r = np.nonzero(~used)
    rng = _rng(cfg.seed, _NEW)
    pick = rng.choice(len(free_h), s["new_facts"], replace=False)
    h, r = free_h[pick], free_r[pick]
    t = rng.integers(0, d.n_entities, size=len(pick))
    first = np.arange(0, s["chain_facts"], 2)
    t[first] = h[first + 1]           # chain a -> b -> t: the first fact ends where the next starts
    return _table(h=h, r1=r, t=t)


def _replay(cfg, atomic, ood, trained_twohop, target: int):
    """Closure: old ID atomic facts in a seeded order plus the trained two-hop facts that use
    them, up to ``target`` items. Returns (replayed atomic, replayed two-hop, two-hop mask)."""
    d = cfg.data
    index = np.full((d.n_entities, d.n_relations), -1)
    index[atomic["h"], atomic["r1"]] = np.arange(n_rows(atomic))
    order = _rng(cfg.seed, _REPLAY).permutation(np.flatnonzero(~ood))
    rank = np.full(n_rows(atomic), np.iinfo(np.int64).max)
    rank[order] = np.arange(len(order))
    hop1 = index[trained_twohop["h"], trained_twohop["r1"]]
    hop2 = index[trained_twohop["b"], trained_twohop["r2"]]
    enters = np.minimum(rank[hop1], rank[hop2])     # when the closure first takes it in
    k = np.arange(1, len(order) + 1)
    total = k + np.searchsorted(np.sort(enters), k, "left")
    n_atoms = int(min(np.searchsorted(total, target, "left") + 1, len(order)))
    chosen = np.sort(order[:n_atoms])
    used = enters < n_atoms
    return _take(atomic, chosen), _take(trained_twohop, np.flatnonzero(used)), used


def build_transfer(cfg) -> TransferDataset:
    """The transfer set of a fine-tuning config, from its parent's graph (``cfg.data``)."""
    validate_transfer(cfg)
    parent = build_dataset(cfg.data, cfg.seed)
    atomic, ood, s = parent.atomic, parent.atomic_ood, sizes(cfg)
    new = new_facts(cfg, atomic)
    old_id = _take(atomic, np.flatnonzero(~ood))
    trained_twohop = _take(parent.train, np.flatnonzero(parent.train["r2"] >= 0))
    rep_atomic, rep_twohop, replayed = _replay(cfg, atomic, ood, trained_twohop, s["replay"])
    rep_mask = np.zeros(n_rows(atomic), dtype=bool)
    rep_mask[np.isin(atomic["h"] * cfg.data.n_relations + atomic["r1"],
                     rep_atomic["h"] * cfg.data.n_relations + rep_atomic["r1"])] = True
    full = {
        "new_atomic": new,
        "new_hop1_old_hop2": _join(new, old_id),
        "old_hop1_new_hop2": _join(old_id, new),
        "new_new": _join(new, new),
        "old_inferred": _take(trained_twohop, np.flatnonzero(~replayed)),
        "old_atomic": _take(atomic, np.flatnonzero(~ood & ~rep_mask)),
    }
    pr = _rng(cfg.seed, _TPROBE)
    cap = cfg.transfer.probe_cap or cfg.data.probe_cap

    def sample(table):
        n = n_rows(table)
        return table if n <= cap else _take(table, np.sort(pr.choice(n, cap, replace=False)))

    # the parent's held-out probes keep their names (old_* replace its id_atomic and
    # train_inferred: they leave out what is replayed)
    full.update({name: parent.probes[name] for name in PARENT_PROBES})
    probes = {name: sample(table) for name, table in full.items()}
    replay = _concat(rep_atomic, rep_twohop)
    train = _concat(replay, new)
    counts = dict(parent.counts, finetune=cfg.finetune, **s,
                  replay_atomic=n_rows(rep_atomic), replay_inferred=n_rows(rep_twohop),
                  replay_total=n_rows(replay), train=n_rows(train),
                  **{f"{k}_all": n_rows(full[k]) for k in PROBE_KINDS})
    return TransferDataset(cfg.data, cfg.seed, _concat(atomic, new),
                           np.concatenate([ood, np.zeros(n_rows(new), dtype=bool)]),
                           train, probes, counts, new=new, replay=replay)


def dataset_for(cfg, store=None):
    """The dataset a run trains on: its graph's, or a transfer set built from its parent's.

    With a ``store`` the parent run (when stored) is checked: the transfer set is built from
    ``cfg.data`` and ``cfg.seed``, which must be the parent's.
    """
    if not cfg.finetune:
        return build_dataset(cfg.data, cfg.seed)
    validate_transfer(cfg)
    if store is not None and cfg.parent:
        from .runs import list_runs, load_run
        rid = cfg.parent.partition("@")[0]
        if rid in list_runs(store):
            p = load_run(rid, store).config
            if p.finetune:
                raise ConfigError(f"parent: run {rid} is itself fine-tuned; a transfer set "
                                  "starts from a run trained on its own graph")
            if p.data != cfg.data or p.seed != cfg.seed:
                raise ConfigError(f"parent: run {rid} has other data or seed than this config; "
                                  "use grokbook.transfer.finetune_config(parent_run, step)")
    return build_transfer(cfg)


# ---------------------------------------------------------------- fine-tuning configs
def finetune_config(parent_run, step: int, lr: float | None = None, max_steps: int = 1000,
                    finetune: str = "new_knowledge", **overrides):
    """Config that fine-tunes ``parent_run`` from its checkpoint ``step`` on a transfer set.

    Same data, model and seed as the parent; own learning rate (default: half the parent's,
    as the study's 2e-5 against 4e-5), a short warmup, dense evaluation and ten checkpoints.
    ``overrides`` are dotted fields (``**{"transfer.new_facts": 600}``).
    """
    if step not in parent_run.checkpoints:
        raise ConfigError(f"parent: step {step} is not a stored checkpoint of run "
                          f"{parent_run.id}; stored: {parent_run.checkpoints}")
    if parent_run.config.finetune:
        raise ConfigError(f"parent: run {parent_run.id} is itself fine-tuned; start from a run "
                          "trained on its own graph")
    t = parent_run.config.train
    settings = {
        "parent": f"{parent_run.id}@{step}", "finetune": finetune,
        "train.lr": lr if lr is not None else t.lr / 2, "train.max_steps": max_steps,
        "train.warmup_steps": min(t.warmup_steps, max_steps // 10),
        "train.eval_every": max(1, max_steps // 20), "train.eval_dense_until": max_steps,
        "train.checkpoint_every": max(1, max_steps // 10), "train.device": "auto"}
    settings.update(overrides)
    return parent_run.config.replace(**settings)


# steps and learning rate of the chapter's fine-tuning runs, per preset (the study: lr 2e-5
# after training at 4e-5, ~39k steps; here: enough steps to learn the new facts, cheaply)
# (at cpu: batch 128 over ~2,000 items, 600 queries per probe, so a run is a few minutes)
_CHAPTER = {"test": dict(max_steps=40, lr=3e-3),
            "cpu": {"max_steps": 800, "lr": 5e-4, "train.batch_size": 128,
                    "transfer.probe_cap": 600},
            "gpu": {"max_steps": 4000, "lr": 5e-4, "transfer.probe_cap": 3000},
            "paper": {"max_steps": 40000, "lr": 2e-5}}


def chapter_finetune_settings(preset: str) -> dict:
    """``finetune_config`` keyword arguments the chapter uses at ``preset``."""
    if preset not in _CHAPTER:
        raise ConfigError(f"preset: unknown preset {preset!r}; allowed: {', '.join(_CHAPTER)}")
    return dict(_CHAPTER[preset])


# ---------------------------------------------------------------- which checkpoints
def pick_checkpoints(run, memorized_at: float = 0.99, low: float = 0.9,
                     grokked_at: float = 0.9) -> pd.DataFrame:
    """The two starting points of the chapter, from the parent's metrics at stored checkpoints.

    ``grokked``: the last checkpoint with test_inferred_iid >= ``grokked_at``.
    ``memorized``: train_inferred >= ``memorized_at`` while test_inferred_iid <= ``low``
    (the lowest such ID accuracy). When a criterion is never met, a stand-in is named
    (``met`` False): the last checkpoint for grokked, the checkpoint with the largest gap
    train_inferred - test_inferred_iid for memorized.
    """
    acc = run.accuracy()
    ck = acc.loc[[s for s in run.checkpoints if s in acc.index],
                 ["train_inferred", "test_inferred_iid"]]
    grok = ck[ck.test_inferred_iid >= grokked_at]
    mem = ck[(ck.train_inferred >= memorized_at) & (ck.test_inferred_iid <= low)]
    rows = []
    if len(grok):
        rows.append(("grokked", int(grok.index[-1]), True))
    else:
        rows.append(("grokked", int(ck.index[-1]), False))
    if len(mem):
        rows.append(("memorized", int(mem.test_inferred_iid.idxmin()), True))
    else:
        gap = (ck.train_inferred - ck.test_inferred_iid).drop(rows[0][1], errors="ignore")
        if len(gap):
            rows.append(("memorized", int(gap.idxmax()), False))
    out = pd.DataFrame(rows, columns=["role", "step", "met"])
    out["train_inferred"] = ck.loc[out.step, "train_inferred"].to_numpy()
    out["test_inferred_iid"] = ck.loc[out.step, "test_inferred_iid"].to_numpy()
    return out


def describe_checkpoints(picks: pd.DataFrame, memorized_at=0.99, low=0.9, grokked_at=0.9) -> str:
    """Plain words for ``pick_checkpoints``: which steps, and whether each criterion held."""
    words = []
    for r in picks.itertuples():
        crit = (f"test_inferred_iid >= {grokked_at}" if r.role == "grokked" else
                f"train_inferred >= {memorized_at} and test_inferred_iid <= {low}")
        state = "meets" if r.met else "no checkpoint met the criterion; the stand-in is"
        words.append(f"- **{r.role}** ({crit}): {state} step {r.step} (train_inferred "
                     f"{r.train_inferred:.2f}, test_inferred_iid {r.test_inferred_iid:.2f}).")
    if "memorized" not in set(picks.role):
        words.append("- **memorized**: no distinct checkpoint is left for the control.")
    return "\n".join(words)


# ---------------------------------------------------------------- lens over fine-tuning
R1_POSITION = 1  # the bridge is read at the r1 position (Wang et al.)


def bridge_top1(model, ds, table: dict, chunk: int = 2048):
    """Per query: answer correct (N,), and whether ``b`` is the top-1 lens token at the r1
    position per stage (S, N) and at any position per stage (S, N).

    The lens is grokbook.lens's: ``unembed`` of every cached residual state.
    """
    import torch
    from .lens import run_cached
    x, pos, y = ds.tensors(table)
    b = torch.as_tensor(table["b"])
    with torch.no_grad():
        logits, cache = run_cached(model, x, chunk)
        correct = (logits[torch.arange(len(x)), pos].argmax(-1) == y).numpy()
        at_r1, anywhere = [], []
        for name in cache:                 # in model.stage_names order
            top = model.unembed(cache[name]).argmax(-1)           # (N, T)
            hit = top == b[:, None]
            at_r1.append(hit[:, R1_POSITION].numpy())
            anywhere.append(hit.any(1).numpy())
    return correct, list(cache), np.stack(at_r1), np.stack(anywhere)


def strict_stage(run, probe: str = "old_inferred") -> str:
    """The stage where the starting checkpoint resolves the bridge of old two-hop queries best
    (b top-1 at the r1 position); the strict rule reads that one stage at every step."""
    ds = run.dataset
    _, names, at_r1, _ = bridge_top1(run.load_model(run.checkpoints[0]), ds, ds.probes[probe])
    return names[int(at_r1.mean(1).argmax())]


def probe_lens(model, ds, name: str, stage: str) -> dict:
    """Accuracy and the two bridge rules (grokbook.lens: strict = b top-1 at the r1 position
    at ``stage``; lenient = b top-1 at any stage and any position) on one probe set."""
    table = ds.probes[name]
    row = {"probe": name, "n": n_rows(table), "accuracy": np.nan,
           "bridge_found_strict": np.nan, "bridge_found_lenient": np.nan,
           "bridge_found_when_wrong": np.nan}
    if not (table["r2"] >= 0).all():       # atomic facts: no bridge, accuracy only
        import torch
        x, pos, y = ds.tensors(table)
        with torch.no_grad():
            row["accuracy"] = float((model(x, pos).argmax(-1) == y).float().mean())
        return row
    correct, names, at_r1, anywhere = bridge_top1(model, ds, table)
    lenient = anywhere.any(0)
    row.update(accuracy=float(correct.mean()),
               bridge_found_strict=float(at_r1[names.index(stage)].mean()),
               bridge_found_lenient=float(lenient.mean()),
               bridge_found_when_wrong=float(lenient[~correct].mean()) if (~correct).any()
               else np.nan)
    return row


def transfer_table(run, probes=PROBE_KINDS + PARENT_PROBES, steps=None,
                   stage: str | None = None) -> pd.DataFrame:
    """Tidy table over the run's checkpoints: step, probe, n, accuracy, bridge_found_strict,
    bridge_found_lenient, bridge_found_when_wrong (lenient rule, wrong answers only).

    Bridge columns are NaN for atomic probes. The strict stage (``attrs["strict_stage"]``)
    is fixed for the whole run: by default the one ``strict_stage`` picks.
    """
    ds = run.dataset
    stage = stage or strict_stage(run)
    names = [p for p in probes if p in ds.probes and n_rows(ds.probes[p])]
    rows = []
    for step in steps if steps is not None else run.checkpoints:
        model = run.load_model(step)
        rows += [dict(step=step, **probe_lens(model, ds, p, stage)) for p in names]
    df = pd.DataFrame(rows)
    df.attrs["strict_stage"] = stage
    return df


# ---------------------------------------------------------------- the study beside ours
def compare_with_study(tables: dict) -> pd.DataFrame:
    """Final and best accuracy and final bridge rates per probe kind for each named table
    (e.g. {"grokked": t1, "memorized": t2}), beside the study's numbers."""
    parts = []
    for label, t in tables.items():
        last = t[t.step == t.step.max()].set_index("probe")
        best = t.groupby("probe")["accuracy"].max()
        parts.append(pd.DataFrame({
            "start": label, "final_accuracy": last["accuracy"], "best_accuracy": best,
            "bridge_lenient": last["bridge_found_lenient"],
            "bridge_strict": last["bridge_found_strict"], "n": last["n"]}))
    ours = pd.concat(parts).rename_axis("probe").reset_index()
    return ours.merge(STUDY_TRANSFER, on="probe", how="left")


def retention(tables: dict, probes=("old_inferred", "old_atomic", "test_inferred_iid",
                                      "test_inferred_ood")) -> pd.DataFrame:
    """Old knowledge before and after fine-tuning: start, probe, before, after, change."""
    rows = []
    for label, t in tables.items():
        for probe in probes:
            p = t[t.probe == probe].sort_values("step")
            if len(p):
                before, after = float(p.accuracy.iloc[0]), float(p.accuracy.iloc[-1])
                rows.append((label, probe, before, after, after - before))
    return pd.DataFrame(rows, columns=["start", "probe", "before", "after", "change"])


def _verdict(acc: float, yes: float, no: float) -> str:
    if acc >= yes:
        return "composes"
    if acc <= no:
        return "does not compose"
    return "composes partly"


def claim3_answer(grokked: pd.DataFrame, control: pd.DataFrame | None = None,
                  yes: float = 0.5, no: float = 0.2, grokked_met: bool = True) -> str:
    """Claim 3 in plain words, computed from ``transfer_table`` results (markdown)."""
    def final(t, probe, col="accuracy"):
        last = t[(t.step == t.step.max()) & (t.probe == probe)]
        return float(last[col].iloc[0]) if len(last) else float("nan")

    def first(t, probe, col="accuracy"):
        rows = t[(t.step == t.step.min()) & (t.probe == probe)]
        return float(rows[col].iloc[0]) if len(rows) else float("nan")

    g = grokked
    start = "grokked" if grokked_met else "final (not grokked: no checkpoint met the criterion)"
    study = {"new_hop1_old_hop2": "composes", "old_hop1_new_hop2": "does not compose",
             "new_new": "does not compose"}
    lines = [f"Fine-tuned from the {start} checkpoint, the model learned "
             f"{final(g, 'new_atomic'):.0%} of the new facts."]
    if final(g, "new_atomic") < yes:
        lines.append("- **Caveat:** most new facts were not learned, so a failure to compose "
                     "them below says little about the circuit; a longer fine-tuning (or a "
                     "larger preset) is needed for a verdict.")
    for probe, what in (("new_hop1_old_hop2", "a new fact as **hop 1**"),
                        ("old_hop1_new_hop2", "a new fact as **hop 2**"),
                        ("new_new", "**two new facts** (new+new)")):
        v = _verdict(final(g, probe), yes, no)
        agree = "as in the study" if v == study[probe] else f"the study: it {study[probe]}"
        lines.append(f"- With {what} it {v}: accuracy {final(g, probe):.2f} ({agree}).")
    nb, nw = final(g, "new_new", "bridge_found_lenient"), final(g, "new_new",
                                                                "bridge_found_when_wrong")
    lines.append(f"- On new+new queries the bridge entity is found (lenient rule) in {nb:.0%} "
                 f"of cases (strict: {final(g, 'new_new', 'bridge_found_strict'):.0%}), and "
                 f"in {nw:.0%} of the queries answered wrong: "
                 + ("the bridge is resolved even when the answer is wrong, as the study saw "
                    "(97-99%)." if nw >= yes else
                    "the bridge is mostly not resolved when the answer is wrong, unlike the "
                    "study's 97-99%."))
    lines.append(f"- Old knowledge: two-hop facts that were not replayed go from "
                 f"{first(g, 'old_inferred'):.2f} to {final(g, 'old_inferred'):.2f}; "
                 f"held-out ID queries from {first(g, 'test_inferred_iid'):.2f} to "
                 f"{final(g, 'test_inferred_iid'):.2f}.")
    if control is not None:
        c = control
        lines.append(f"- The control (memorized, not yet grokked) reaches "
                     f"{final(c, 'new_hop1_old_hop2'):.2f} on hop 1, "
                     f"{final(c, 'old_hop1_new_hop2'):.2f} on hop 2 and "
                     f"{final(c, 'new_new'):.2f} on new+new.")
    return "\n".join(lines)


def curves(tables: dict) -> pd.DataFrame:
    """Long table for charts: start, step, probe, measure, value."""
    parts = [t.assign(start=label) for label, t in tables.items()]
    df = pd.concat(parts, ignore_index=True)
    return df.melt(id_vars=["start", "step", "probe"],
                   value_vars=["accuracy", "bridge_found_lenient", "bridge_found_strict"],
                   var_name="measure", value_name="value").dropna(subset=["value"])


def curves_chart(long: pd.DataFrame):
    """Altair: one panel per probe kind; accuracy and bridge rates over fine-tuning steps."""
    import altair as alt
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("step:Q", title="fine-tuning step"),
        y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("measure:N"), strokeDash=alt.StrokeDash("start:N"),
        tooltip=["start", "probe", "measure", "step", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=180, height=130).facet(facet="probe:N", columns=3)


__all__ = ["TRANSFER_SETS", "PROBE_KINDS", "STUDY_TRANSFER", "TransferDataset", "sizes",
           "validate_transfer", "build_transfer", "dataset_for", "finetune_config",
           "chapter_finetune_settings", "pick_checkpoints", "describe_checkpoints",
           "strict_stage", "transfer_table", "compare_with_study", "retention",
           "claim3_answer", "curves", "curves_chart"]
