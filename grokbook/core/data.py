"""The synthetic knowledge graph of Wang et al. and the study, seeded.

Every random choice draws from a generator keyed by (seed, purpose) (``core.tables``), so
the graph does not change when only phi changes, and a smaller phi's training facts are a
subset of a larger phi's. Query tables are ``core.tables``'s.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import ConfigError, DataConfig
from .regimes import augment
from .tables import COLUMNS, GRAPH, PROBE, SHUFFLE, SPLIT, TEST, TRAIN, concat, n_rows, take
from .tables import rng as keyed_rng
from .tables import table as new_table

PROBES = ("id_atomic", "ood_atomic", "train_inferred", "test_inferred_iid", "test_inferred_ood")
SPECIALS = ("<pad>", "</a>")


@dataclass
class Vocab:
    n_entities: int
    n_relations: int

    @property
    def pad(self) -> int:
        return self.n_entities + self.n_relations

    @property
    def end(self) -> int:
        return self.pad + 1

    def __len__(self) -> int:
        return self.n_entities + self.n_relations + len(SPECIALS)

    def entity(self, e):
        return e

    def relation(self, r):
        return self.n_entities + np.asarray(r)

    def token_name(self, tok: int) -> str:
        if tok < self.n_entities:
            return f"<e_{tok}>"
        if tok < self.pad:
            return f"<r_{tok - self.n_entities}>"
        return SPECIALS[tok - self.pad]

    def parse(self, name: str) -> int:
        if name.startswith("<e_") and name.endswith(">"):
            return int(name[3:-1])
        if name.startswith("<r_") and name.endswith(">"):
            return self.n_entities + int(name[3:-1])
        if name in SPECIALS:
            return self.pad + SPECIALS.index(name)
        raise ValueError(f"unknown token {name!r}")


@dataclass
class Dataset:
    config: DataConfig
    seed: int
    atomic: dict                    # all atomic facts (query table)
    atomic_ood: np.ndarray          # bool per atomic fact
    train: dict                     # training examples (atomic + inferred [+ augmentation])
    probes: dict                    # probe name -> query table
    counts: dict = field(default_factory=dict)

    @property
    def vocab(self) -> Vocab:
        return Vocab(self.config.n_entities, self.config.n_relations)

    def tensors(self, table: dict, device="cpu"):
        """(tokens (N, 3), answer position (N,), target (N,)) as torch tensors."""
        import torch
        v = self.vocab
        atomic = table["r2"] < 0
        x = np.stack([table["h"], v.relation(table["r1"]),
                      np.where(atomic, v.pad, v.relation(np.maximum(table["r2"], 0)))], 1)
        pos = np.where(atomic, 1, 2)
        return (torch.as_tensor(x, device=device), torch.as_tensor(pos, device=device),
                torch.as_tensor(table["t"], device=device))

    def frame(self, name: str) -> pd.DataFrame:
        """A probe set (or 'train', 'atomic') as a readable DataFrame."""
        table = {"train": self.train, "atomic": self.atomic}.get(name) or self.probes[name]
        return pd.DataFrame(table)

    def summary(self) -> dict:
        return dict(self.counts, probes={k: n_rows(v) for k, v in self.probes.items()},
                    vocab_size=len(self.vocab))

    def digest(self) -> str:
        """Hash of every array: the same config gives the same digest, byte for byte."""
        import hashlib
        h = hashlib.sha256()
        for t in (self.atomic, self.train, *[self.probes[k] for k in sorted(self.probes)]):
            for c in COLUMNS:
                h.update(t[c].tobytes())
        h.update(self.atomic_ood.tobytes())
        return h.hexdigest()[:16]


# ---------------------------------------------------------------- the graph
def make_graph(cfg: DataConfig, seed: int) -> dict:
    """Atomic facts ordered by head: head h owns rows h*d .. h*d+d-1."""
    E, R, d = cfg.n_entities, cfg.n_relations, cfg.out_degree
    rng = keyed_rng(seed, GRAPH, E, R, d)
    rels = np.stack([rng.choice(R, size=d, replace=False) for _ in range(E)])  # (E, d)
    tails = rng.integers(0, E, size=(E, d))
    heads = np.repeat(np.arange(E), d)
    return new_table(h=heads, r1=rels.reshape(-1), t=tails.reshape(-1))


def split_ood(cfg: DataConfig, seed: int, n_atomic: int) -> np.ndarray:
    rng = keyed_rng(seed, SPLIT)
    n_ood = int(round(cfg.ood_ratio * n_atomic))
    ood = np.zeros(n_atomic, dtype=bool)
    ood[rng.choice(n_atomic, size=n_ood, replace=False)] = True
    return ood


def compose(atomic: dict, d: int, first=None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Every two-hop fact (h, r1, r2) -> t through bridge b, with the indices of its hops.

    Rows of ``atomic`` must be ordered by head with ``d`` facts each (as make_graph gives).
    ``first`` restricts the first hops to these atomic indices.
    """
    first = np.arange(n_rows(atomic)) if first is None else np.asarray(first)
    i1 = np.repeat(first, d)
    bridge = atomic["t"][i1]
    i2 = bridge * d + np.tile(np.arange(d), len(first))
    table = new_table(h=atomic["h"][i1], r1=atomic["r1"][i1], r2=atomic["r1"][i2],
                   b=bridge, t=atomic["t"][i2])
    return table, i1, i2


def max_phi_of(n_pool: int, n_id_atomic: int) -> float:
    return n_pool / max(n_id_atomic, 1)


def build_dataset(cfg: DataConfig, seed: int = 0) -> Dataset:
    """The whole dataset of a config: graph, split, training set, probes. Seeded."""
    if cfg.from_json:
        return load_json(cfg.from_json, cfg, seed)
    atomic = make_graph(cfg, seed)
    d = cfg.out_degree
    ood = split_ood(cfg, seed, n_rows(atomic))
    twohop, i1, i2 = compose(atomic, d)
    is_id = ~ood[i1] & ~ood[i2]
    is_ood = ood[i1] & ood[i2]
    id_idx = np.flatnonzero(is_id)
    n_test = int(round(cfg.iid_test_ratio * len(id_idx)))
    perm = keyed_rng(seed, TEST).permutation(id_idx)
    test_idx, pool_idx = np.sort(perm[:n_test]), perm[n_test:]
    n_id_atomic = int((~ood).sum())
    max_phi = max_phi_of(len(pool_idx), n_id_atomic)
    n_train = int(round(cfg.phi * n_id_atomic))
    if n_train > len(pool_idx):
        raise ConfigError(
            f"data.phi: {cfg.phi} is not allowed; allowed: 0 to max_phi = {max_phi:.3f} for "
            f"this graph ({len(pool_idx)} ID two-hop facts in the pool / {n_id_atomic} ID atomic)")
    # nested in phi: the first n of one fixed permutation of the pool
    train_idx = np.sort(keyed_rng(seed, TRAIN).permutation(pool_idx)[:n_train])
    train_inferred = take(twohop, train_idx)
    if cfg.shuffle_inferred:  # the lookup control: tails permuted among the training facts
        train_inferred["t"] = keyed_rng(seed, SHUFFLE).permutation(train_inferred["t"])

    extra, aug_counts = augment(cfg, seed, atomic, ood, d)
    train = concat(atomic, train_inferred, extra)

    pr = keyed_rng(seed, PROBE)
    cap = cfg.probe_cap

    def sample(table):
        n = n_rows(table)
        return table if n <= cap else take(table, np.sort(pr.choice(n, cap, replace=False)))

    probes = {
        "id_atomic": sample(take(atomic, np.flatnonzero(~ood))),
        "ood_atomic": sample(take(atomic, np.flatnonzero(ood))),
        "train_inferred": sample(train_inferred),
        "test_inferred_iid": sample(take(twohop, test_idx)),
        "test_inferred_ood": sample(take(twohop, np.flatnonzero(is_ood))),
    }
    counts = dict(
        n_entities=cfg.n_entities, n_relations=cfg.n_relations, atomic=n_rows(atomic),
        id_atomic=n_id_atomic, ood_atomic=int(ood.sum()), train_inferred=n_train,
        test_inferred_iid=n_test, test_inferred_ood=int(is_ood.sum()),
        id_inferred=len(id_idx), pool=len(pool_idx), max_phi=round(max_phi, 4),
        augmented=n_rows(extra), train=n_rows(train), **aug_counts)
    return Dataset(cfg, seed, atomic, ood, train, probes, counts)


def graph_stats(n_entities: int, n_relations: int, out_degree: int, ood_ratio: float,
                iid_test_ratio: float, phi: float) -> dict:
    """Expected sizes of every set without building the graph (for explorers and grids)."""
    atomic = n_entities * out_degree
    ood = round(ood_ratio * atomic)
    id_atomic = atomic - ood
    p_id = id_atomic / atomic
    id_inferred = atomic * out_degree * p_id * p_id
    test = round(iid_test_ratio * id_inferred)
    pool = id_inferred - test
    mphi = pool / max(id_atomic, 1)
    return dict(atomic=atomic, id_atomic=id_atomic, ood_atomic=ood,
                id_inferred=round(id_inferred), test_inferred_iid=test,
                test_inferred_ood=round(atomic * out_degree * (1 - p_id) ** 2),
                max_phi=round(mphi, 3), phi_possible=phi <= mphi,
                train_inferred=round(phi * id_atomic) if phi <= mphi else None,
                train_total=atomic + round(phi * id_atomic) if phi <= mphi else None)


# ---------------------------------------------------------------- original JSON format
def _record(v: Vocab, row: dict, i: int, kind: str) -> dict:
    names = [v.token_name(int(row["h"][i])), v.token_name(v.n_entities + int(row["r1"][i]))]
    if row["r2"][i] >= 0:
        names.append(v.token_name(v.n_entities + int(row["r2"][i])))
    inp = "".join(names)
    return {"input_text": inp, "target_text": inp + v.token_name(int(row["t"][i])) + "</a>",
            "type": kind}


def export_json(ds: Dataset, directory) -> Path:
    """Write train.json, test.json (probes, typed by name) and vocab.json."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    v = ds.vocab
    train = []
    for i in range(n_rows(ds.train)):
        if ds.train["r2"][i] < 0:
            kind = "ood_atomic" if ds.atomic_ood[i] else "id_atomic"  # atomic rows come first
        else:
            kind = "train_inferred"
        train.append(_record(v, ds.train, i, kind))
    test = [_record(v, t, i, name) for name, t in ds.probes.items() for i in range(n_rows(t))]
    for name, recs in (("train.json", train), ("test.json", test),
                       ("vocab.json", [v.token_name(k) for k in range(len(v))])):
        (out / name).write_text(json.dumps(recs))
    return out


def _tokens(text: str) -> list[str]:
    parts = text.replace(">", ">\x00").split("\x00")
    if parts[-1] != "":
        raise ValueError(f"text {text!r} does not end with a token")
    return [p for p in parts if p]


def _read_json(path: Path, what: str):
    """The parsed content of one of the format's files; every failure names the file."""
    if not path.exists():
        raise ValueError(f"{path}: missing; the original format has train.json and test.json "
                         f"(vocab.json optional) in one folder ({what})")
    try:
        return json.loads(path.read_text())
    except PermissionError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _read_vocab(path: Path) -> tuple[int, int]:
    names = _read_json(path, "the token list")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: expected a non-empty JSON list of token strings such as "
                         f"\"<e_0>\", \"<r_0>\", \"</a>\"")
    E = sum(1 for n in names if n.startswith("<e_"))
    R = sum(1 for n in names if n.startswith("<r_"))
    if not E or not R:
        raise ValueError(f"{path}: lists {E} entity tokens (<e_N>) and {R} relation tokens "
                         f"(<r_N>); both are needed")
    return E, R


def _parse_token(v: Vocab, name: str) -> int:
    for prefix, kind, n in (("<e_", "entity", v.n_entities), ("<r_", "relation", v.n_relations)):
        if name.startswith(prefix) and name.endswith(">"):
            num = name[len(prefix):-1]
            if not num.isdigit():
                raise ValueError(f"token {name!r}: an {kind} token is {prefix}N> with N a number")
            if int(num) >= n:
                raise ValueError(f"token {name!r}: this vocabulary has {n} {kind} tokens "
                                 f"({prefix}0> to {prefix}{n - 1}>)")
            return int(num) + (0 if kind == "entity" else v.n_entities)
    return v.parse(name)


def _read_records(path: Path, v: Vocab) -> list[tuple]:
    records = _read_json(path, "a list of records")
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path}: expected a non-empty JSON list of records like "
                         f'{{"input_text": "<e_3><r_7>", "target_text": "<e_3><r_7><e_42></a>"}}')
    rows = []
    for i, rec in enumerate(records):
        try:
            if not isinstance(rec, dict):
                raise ValueError(f"expected an object, got {type(rec).__name__}")
            for key in ("input_text", "target_text"):
                if not isinstance(rec.get(key), str):
                    raise ValueError(f"{key} must be a string, got {rec.get(key)!r}")
            inp = [_parse_token(v, t) for t in _tokens(rec["input_text"])]
            tgt = [_parse_token(v, t) for t in _tokens(rec["target_text"])]
            if len(inp) not in (2, 3) or tgt[:len(inp)] != inp or len(tgt) != len(inp) + 2 \
                    or tgt[-1] != v.end:
                raise ValueError("expected <e_h><r>[<r>] then the answer entity and </a>")
            h, rels, t = inp[0], [x - v.n_entities for x in inp[1:]], tgt[len(inp)]
            if not (0 <= h < v.n_entities and 0 <= t < v.n_entities
                    and all(0 <= r < v.n_relations for r in rels)):
                raise ValueError("expected an entity, relation(s), then an entity")
            rows.append((h, rels[0], rels[1] if len(rels) > 1 else -1, t, str(rec.get("type", ""))))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: record {i} is malformed: {e}") from None
    return rows


def _check_facts(path: Path, rows: list[tuple], facts: dict) -> None:
    """Every record agrees with the atomic facts: a two-hop record's bridge and answer
    follow from its two atomic facts, an atomic record repeats a known fact."""
    for i, (h, r1, r2, t, _) in enumerate(rows):
        where = f"{path}: record {i} (<e_{h}><r_{r1}>" + (f"<r_{r2}>" if r2 >= 0 else "") + ")"
        if r2 < 0:
            if facts.get((h, r1), t) != t:
                raise ValueError(f"{where} says <e_{t}>, but the atomic facts of train.json say "
                                 f"<e_{facts[(h, r1)]}>")
            continue
        if (h, r1) not in facts:
            raise ValueError(f"{where}: no atomic fact (<e_{h}>, <r_{r1}>) in train.json gives "
                             f"its bridge entity")
        b = facts[(h, r1)]
        if (b, r2) not in facts:
            raise ValueError(f"{where}: its bridge is <e_{b}>, but no atomic fact (<e_{b}>, "
                             f"<r_{r2}>) in train.json gives its second hop")
        if facts[(b, r2)] != t:
            raise ValueError(f"{where} answers <e_{t}>, but its two atomic facts give "
                             f"<e_{facts[(b, r2)]}> (via bridge <e_{b}>)")


def load_json(directory, cfg: DataConfig | None = None, seed: int = 0) -> Dataset:
    """Load data in the original format (train.json, test.json, optional vocab.json).

    Records are checked against the atomic facts (contradictions, two-hop records without
    their facts, wrong answers are errors naming the file and the record). Files written by
    the original generator carry no ``type`` on training records: the OOD atomic facts are
    then the ``ood_atomic`` records of test.json."""
    d = Path(directory).expanduser().absolute()
    if not d.is_dir():
        raise ValueError(f"data.from_json: {str(directory)!r} is not a folder; expected a folder "
                         f"with train.json and test.json")
    if (d / "vocab.json").exists():
        E, R = _read_vocab(d / "vocab.json")
    else:  # infer sizes from the largest ids used
        texts = (d / "train.json").read_text() if (d / "train.json").exists() else ""
        ents = [int(x) for x in re.findall(r"<e_(\d+)>", texts)]
        rels = [int(x) for x in re.findall(r"<r_(\d+)>", texts)]
        if not ents or not rels:
            _read_records(d / "train.json", Vocab(1, 1))  # names the file's problem
            raise ValueError(f"{d / 'train.json'}: no <e_N> and <r_N> tokens, and no vocab.json "
                             f"to say the vocabulary")
        E, R = max(ents) + 1, max(rels) + 1
    v = Vocab(E, R)
    train_rows = _read_records(d / "train.json", v)
    test_rows = _read_records(d / "test.json", v)

    facts = {}
    for i, (h, r1, r2, t, _) in enumerate(train_rows):
        if r2 < 0 and facts.setdefault((h, r1), t) != t:
            raise ValueError(f"{d / 'train.json'}: record {i} (<e_{h}><r_{r1}>) says <e_{t}>, "
                             f"but an earlier record says <e_{facts[(h, r1)]}>: contradictory "
                             f"atomic facts")
    if not facts:
        raise ValueError(f"{d / 'train.json'}: no atomic facts (<e_h><r> records); two-hop "
                         f"records need them")
    _check_facts(d / "train.json", train_rows, facts)
    _check_facts(d / "test.json", test_rows, facts)

    def table(rows):
        a = np.array([r[:4] for r in rows], dtype=np.int64).reshape(-1, 4)
        return new_table(h=a[:, 0], r1=a[:, 1], r2=a[:, 2], t=a[:, 3])

    train = table(train_rows)
    is_atomic = train["r2"] < 0
    atomic = take(train, np.flatnonzero(is_atomic))
    atomic_types = [r[4] for r, a in zip(train_rows, is_atomic) if a]
    if any(atomic_types):
        ood = np.array([k == "ood_atomic" for k in atomic_types], dtype=bool)
    else:  # the original generator: untyped training records, OOD facts listed in test.json
        ood_pairs = {(h, r1) for h, r1, r2, t, k in test_rows if k == "ood_atomic"}
        ood = np.array([(h, r) in ood_pairs for h, r in zip(atomic["h"], atomic["r1"])],
                       dtype=bool)

    def with_bridge(tb):
        tb["b"] = np.array([facts.get((h, r), -1) if r2 >= 0 else -1
                            for h, r, r2 in zip(tb["h"], tb["r1"], tb["r2"])], dtype=np.int64)
        return tb

    train = with_bridge(train)
    probes = {}
    for name in dict.fromkeys(r[4] for r in test_rows):
        probes[name] = with_bridge(table([r for r in test_rows if r[4] == name]))
    degrees = np.bincount(atomic["h"], minlength=E)
    cfg = dataclasses.replace(cfg or DataConfig(), n_entities=E, n_relations=R,
                              out_degree=int(degrees.max()), from_json=str(d))
    counts = dict(n_entities=E, n_relations=R, atomic=n_rows(atomic),
                  id_atomic=int((~ood).sum()), ood_atomic=int(ood.sum()),
                  train_inferred=int((~is_atomic).sum()),
                  test_inferred_iid=n_rows(probes.get("test_inferred_iid", table([]))),
                  test_inferred_ood=n_rows(probes.get("test_inferred_ood", table([]))),
                  max_phi=None, train=n_rows(train))
    return Dataset(cfg, seed, atomic, ood, train, probes, counts)


def json_digest(directory) -> str:
    import hashlib
    h = hashlib.sha256()
    for name in ("train.json", "test.json", "vocab.json"):
        p = Path(directory) / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
