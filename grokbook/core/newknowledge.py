"""New knowledge after grokking: transfer sets (fine-tuning sets and probes), as data builders.

He et al. (2026) fine-tune a grokked model on facts it has never seen and ask whether
the circuit it grew for two-hop composition (Wang et al. 2024) composes them too. The
transfer set here follows their recipe, scaled to the graph and seeded:

- **New atomic facts** sit on (head, relation) pairs the graph left free (each head uses
  ``out_degree`` of the ``n_relations`` relations, so ``out_degree < n_relations`` is
  required). They reuse the entities and relations of the parent's vocabulary. A share of
  them (``transfer.chain_fraction``; all of them by default, as in the study's 1,000
  chains) is built as chains a -> b -> t: the tail of one new fact is the head of another,
  so new+new compositions exist.
- **Replay** (old knowledge, so it is not forgotten) is a closure: old ID atomic facts in
  a seeded order, each with every two-hop fact of the parent's training set that uses it
  as hop 1 or hop 2, until ``transfer.replay`` items are reached (the study: 220 atomic
  + the 7,780 two-hop facts using them = 8,000).
- **Fine-tuning set** = replay + new atomic facts. As in the study, no two-hop fact that
  involves a new fact is ever trained: composing them is the test.
- **Positive control** (``finetune="new_knowledge_hop2_control"``): the same set, plus, for
  a seeded half of the new facts, ``transfer.control_per_fact`` composition(s) per fact (1
  by default) in which the
  new fact is hop 2 after a replayed old hop 1. Its test ``hop2_control_test`` holds the
  *other* compositions of those same facts (each fact has been hop 2 in training, these
  queries have not): if the control composes them, hop-2 composition of new facts can be
  learned in the fine-tuning budget, and a low ``replayed_hop1_new_hop2`` elsewhere is not
  just a short run. ``hop2_control_unseen`` holds the compositions of the other half, never
  hop 2 in training (Wang et al.'s OOD situation). Both probes are in every transfer set,
  so every run is measured on the same queries.
- **Probes**: ``new_atomic`` (were the new facts learned); as the study defines them,
  ``new_hop1_replayed_hop2`` (new fact as hop 1, a *replayed* old ID fact as hop 2) and
  ``replayed_hop1_new_hop2`` (a replayed old fact, then the new one); the same with old ID
  facts that are *not* replayed, a harder question the study did not ask
  (``new_hop1_old_hop2``, ``old_hop1_new_hop2``); ``new_new`` (both hops new);
  ``old_inferred`` / ``old_atomic`` (old facts that are not replayed: forgetting); and the
  parent's own probes under their usual names.

Every two-hop query has one answer: the (head, relation) pairs of old and new facts never
overlap, so the bridge and the tail are determined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import transfer_sizes, validate_transfer
from .data import Dataset, build_dataset
from .tables import CONTROL, NEW, REPLAY, TPROBE, concat, n_rows, take
from .tables import rng as keyed_rng
from .tables import table as new_table

PROBE_KINDS = ("new_atomic", "new_hop1_replayed_hop2", "replayed_hop1_new_hop2", "new_new",
               "new_hop1_old_hop2", "old_hop1_new_hop2", "old_inferred", "old_atomic")
PARENT_PROBES = ("test_inferred_iid", "test_inferred_ood")
HOP2_CONTROL = "new_knowledge_hop2_control"    # the positive control's transfer set
CONTROL_TEST = "hop2_control_test"       # its test: other compositions of the supervised facts
CONTROL_UNSEEN = "hop2_control_unseen"   # compositions of the other half (never hop 2 in training)
CONTROL_TRAINED = "hop2_control_trained"       # the compositions it trains (control only)


@dataclass
class TransferDataset(Dataset):
    """A ``Dataset`` (same vocabulary as the parent) with the new facts and the replay."""
    new: dict = field(default_factory=dict)      # the new atomic facts (query table)
    replay: dict = field(default_factory=dict)   # the old items replayed in fine-tuning


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
    return new_table(h=first["h"][i1], r1=first["r1"][i1], r2=second["r1"][i2],
                  b=first["t"][i1], t=second["t"][i2])


def new_facts(cfg, atomic: dict) -> dict:
    """New atomic facts on free (head, relation) pairs; the first ``chain_facts`` form chains."""
    d, s = cfg.data, transfer_sizes(cfg)
    used = np.zeros((d.n_entities, d.n_relations), dtype=bool)
    used[atomic["h"], atomic["r1"]] = True
    free_h, free_r = np.nonzero(~used)
    rng = keyed_rng(cfg.seed, NEW)
    pick = rng.choice(len(free_h), s["new_facts"], replace=False)
    h, r = free_h[pick], free_r[pick]
    t = rng.integers(0, d.n_entities, size=len(pick))
    first = np.arange(0, s["chain_facts"], 2)
    t[first] = h[first + 1]           # chain a -> b -> t: the first fact ends where the next starts
    return new_table(h=h, r1=r, t=t)


def _replay(cfg, atomic, ood, trained_twohop, target: int):
    """Closure: old ID atomic facts in a seeded order plus the trained two-hop facts that use
    them, up to ``target`` items. Returns (replayed atomic, replayed two-hop, two-hop mask)."""
    d = cfg.data
    index = np.full((d.n_entities, d.n_relations), -1)
    index[atomic["h"], atomic["r1"]] = np.arange(n_rows(atomic))
    order = keyed_rng(cfg.seed, REPLAY).permutation(np.flatnonzero(~ood))
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
    return take(atomic, chosen), take(trained_twohop, np.flatnonzero(used)), used


def hop2_control_split(cfg, new: dict, hop2: dict):
    """The positive control's rows of ``hop2`` (compositions old -> new fact): (trained:
    ``transfer.control_per_fact`` per new fact of a seeded half, in a seeded order; test: the other
    rows of those facts; unseen: every row whose new fact is in the other half)."""
    d = cfg.data
    index = np.full((d.n_entities, d.n_relations), -1)
    index[new["h"], new["r1"]] = np.arange(n_rows(new))
    which = index[hop2["b"], hop2["r2"]]                 # the new fact each row ends with
    rng = keyed_rng(cfg.seed, CONTROL)
    supervised = np.zeros(n_rows(new), dtype=bool)
    supervised[rng.permutation(n_rows(new))[: n_rows(new) // 2]] = True
    seen = np.zeros(n_rows(new), dtype=np.int64)
    trained = np.zeros(n_rows(hop2), dtype=bool)
    for i in rng.permutation(n_rows(hop2)):              # which compositions are trained
        f = which[i]
        if supervised[f] and seen[f] < cfg.transfer.control_per_fact:
            seen[f] += 1
            trained[i] = True
    return (np.flatnonzero(trained), np.flatnonzero(supervised[which] & ~trained),
            np.flatnonzero(~supervised[which]))


def build_transfer(cfg) -> TransferDataset:
    """The transfer set of a fine-tuning config, from its parent's graph (``cfg.data``)."""
    validate_transfer(cfg)
    parent = build_dataset(cfg.data, cfg.seed)
    atomic, ood, s = parent.atomic, parent.atomic_ood, transfer_sizes(cfg)
    new = new_facts(cfg, atomic)
    trained_twohop = take(parent.train, np.flatnonzero(parent.train["r2"] >= 0))
    rep_atomic, rep_twohop, replayed = _replay(cfg, atomic, ood, trained_twohop, s["replay"])
    rep_mask = np.zeros(n_rows(atomic), dtype=bool)
    rep_mask[np.isin(atomic["h"] * cfg.data.n_relations + atomic["r1"],
                     rep_atomic["h"] * cfg.data.n_relations + rep_atomic["r1"])] = True
    old_rest = take(atomic, np.flatnonzero(~ood & ~rep_mask))    # old ID, not replayed
    full = {
        "new_atomic": new,
        "new_hop1_replayed_hop2": _join(new, rep_atomic),
        "replayed_hop1_new_hop2": _join(rep_atomic, new),
        "new_new": _join(new, new),
        "new_hop1_old_hop2": _join(new, old_rest),
        "old_hop1_new_hop2": _join(old_rest, new),
        "old_inferred": take(trained_twohop, np.flatnonzero(~replayed)),
        "old_atomic": old_rest,
    }
    pr = keyed_rng(cfg.seed, TPROBE)
    cap = cfg.transfer.probe_cap or cfg.data.probe_cap

    def sample(table):
        n = n_rows(table)
        return table if n <= cap else take(table, np.sort(pr.choice(n, cap, replace=False)))

    # the parent's held-out probes keep their names (old_* replace its id_atomic and
    # train_inferred: they leave out what is replayed)
    full.update({name: parent.probes[name] for name in PARENT_PROBES})
    trained_rows, test_rows, unseen_rows = hop2_control_split(
        cfg, new, full["replayed_hop1_new_hop2"])
    full[CONTROL_TEST] = take(full["replayed_hop1_new_hop2"], test_rows)
    full[CONTROL_UNSEEN] = take(full["replayed_hop1_new_hop2"], unseen_rows)
    replay = concat(rep_atomic, rep_twohop)
    train = concat(replay, new)
    if cfg.finetune == HOP2_CONTROL:
        full[CONTROL_TRAINED] = take(full["replayed_hop1_new_hop2"], trained_rows)
        train = concat(train, full[CONTROL_TRAINED])
    probes = {name: sample(table) for name, table in full.items()}
    counts = dict(parent.counts, finetune=cfg.finetune, **s,
                  replay_atomic=n_rows(rep_atomic), replay_inferred=n_rows(rep_twohop),
                  replay_total=n_rows(replay), train=n_rows(train),
                  **{f"{k}_all": n_rows(full[k]) for k in (*PROBE_KINDS, CONTROL_TEST,
                                                                CONTROL_UNSEEN)},
                  control_trained=n_rows(full.get(CONTROL_TRAINED, {"h": []})))
    return TransferDataset(cfg.data, cfg.seed, concat(atomic, new),
                           np.concatenate([ood, np.zeros(n_rows(new), dtype=bool)]),
                           train, probes, counts, new=new, replay=replay)


def dataset_for(cfg):
    """The dataset a run trains on: its graph's, or a transfer set built from its parent's
    graph (the run store checks that the parent run has the same data and seed)."""
    if not cfg.finetune:
        return build_dataset(cfg.data, cfg.seed)
    validate_transfer(cfg)
    return build_transfer(cfg)
