"""One config object describes a run completely; its hash names the run in the store.

Presets name the scale (``test``, ``cpu``, ``gpu``, ``paper``). Every field can be
overridden with a dotted name (``data.phi=18``), and every bad value is a
``ConfigError`` (a ``ValueError``) that names the field, the value and what is allowed.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field, fields

from .regimes import REGIMES, RULE as INJECTION_RULE


class ConfigError(ValueError):
    """A config field has a value it cannot take. The message names the field."""


@dataclass
class DataConfig:
    n_entities: int = 2000
    n_relations: int = 200
    out_degree: int = 20          # distinct relations per head entity
    ood_ratio: float = 0.05       # fraction of atomic facts that are OOD
    iid_test_ratio: float = 0.005  # fraction of ID two-hop facts held out
    phi: float = 18.0             # inferred / ID-atomic ratio in training
    probe_cap: int = 3000         # at most this many queries per probe set
    regime: str = "natural"       # augmentation regime (grokbook.regimes)
    from_json: str = ""           # a directory in the original JSON format, instead of a graph
    shuffle_inferred: bool = False  # a control: training two-hop tails permuted (no bridge
                                  # composes them; a model can only look them up)


@dataclass
class ModelConfig:
    arch: str = "transformer"     # "transformer" (Wang) or "trm" (the study's recursive model)
    n_layer: int = 8
    n_loops: int = 1              # >1: the same blocks run again (parameter sharing)
    d_model: int = 768
    n_head: int = 12
    dropout: float = 0.0
    tie_embeddings: bool = True
    # TRM only
    trm_inner_steps: int = 6
    trm_cycles: int = 2
    trm_expansion: int = 4
    init_scale: float = 1.0       # every 2-D initial weight (matrices, embeddings) multiplied by
                                  # this (Liu, Michaud, Tegmark, Omnigrok, arXiv 2210.01117: a
                                  # large initial norm with weight decay gives a long wait)


@dataclass
class TrainConfig:
    batch_size: int = 512
    lr: float = 1e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 2000
    grad_clip: float = 1.0
    max_steps: int = 1_500_000
    eval_every: int = 2000        # dense evaluation every this many steps ...
    eval_dense_until: int = 20000  # ... up to here, then log-spaced
    eval_per_decade: int = 20
    checkpoint_every: int = 50000
    ema: float = 0.0              # >0: evaluate an exponential moving average of the weights
    stop_at: float = 0.0          # >0: the run ends at the first evaluation where
                                  # test_inferred_iid accuracy reaches this (sweeps use it)
    stop_after_fitted: float = 0.0  # >0: the run ends at the first evaluation at or past
                                  # this multiple of its own fitted step (train_inferred >=
                                  # FITTED_AT), or at max_steps: a run sized by its own clock
    stop_after_grokked: float = 0.0  # >0: ... this multiple of its grokked step
                                  # (test_inferred_iid >= GROKKED_AT): e.g. 2 keeps a grokked
                                  # run going as long again, for a later checkpoint
    device: str = "auto"          # "auto", "cpu" or "cuda"
    precision: str = "auto"       # "auto": bf16 autocast on CUDA, fp32 on the CPU; "fp32";
                                  # "tf32" (fp32, TF32 matrix products on CUDA); "bf16"
    grokfast_alpha: float = 0.98  # Grokfast (Lee et al. 2024): EMA of the gradient ...
    grokfast_lamb: float = 0.0    # ... added back with this gain; 0: off
    optimizer: str = "adamw"      # "adamw"; "muon": Muon (Tveit et al. 2025, arXiv 2504.16041)
                                  # on the hidden weight matrices, AdamW on the rest
    muon_lr: float = 0.02         # Muon's learning rate (the warmup scales it too)
    muon_momentum: float = 0.95
    loss: str = "softmax"         # "softmax" cross-entropy; "stablemax" (Prieto et al. 2025,
                                  # arXiv 2501.04697): s(x) = x + 1 (x >= 0), 1 / (1 - x)
    perp_grad: bool = False       # Prieto et al.'s perpendicular gradient: each weight's gradient
                                  # loses its component along the weight (norm kept)
    init_seed: int = -1           # >=0: the model's initialisation and batch order draw from
                                  # this seed instead of ``Config.seed`` (same graph, another
                                  # training seed: claim 1's positive control)


@dataclass
class TransferConfig:
    # Sizes of a transfer set (grokbook.transfer); only read when ``Config.finetune`` is set.
    new_facts: int = 0            # new atomic facts; 0: scaled to the graph (transfer.sizes)
    chain_fraction: float = 1.0   # share of the new facts built as chains a -> b -> t (study: all)
    replay: int = 0               # old items replayed (atomic + their two-hop); 0: 4 x new_facts
    probe_cap: int = 0            # at most this many queries per probe; 0: data.probe_cap
    control_per_fact: int = 1     # hop-2 positive control: compositions trained per new fact


# Fields added after runs were stored: left out of the run id while at their default, so
# every earlier run keeps its id.
_LATER_FIELDS = (("data", "shuffle_inferred"), ("train", "init_seed"),
                 ("train", "grokfast_alpha"), ("train", "grokfast_lamb"),
                 ("transfer", "control_per_fact"), ("train", "stop_after_fitted"),
                 ("model", "init_scale"), ("train", "precision"),
                 ("train", "stop_after_grokked"), ("train", "optimizer"),
                 ("train", "muon_lr"), ("train", "muon_momentum"), ("train", "loss"),
                 ("train", "perp_grad"))


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    seed: int = 0
    parent: str = ""              # fine-tuning: "<run id>@<step>" of the starting checkpoint
    finetune: str = ""            # fine-tuning: name of the transfer set (grokbook.transfer)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Short stable id of everything that changes the numbers of a run."""
        d = self.to_dict()
        if not self.finetune:  # only fine-tuning reads it: other runs keep their ids
            d.pop("transfer")
        for section, name in _LATER_FIELDS:  # added later: at their default, ids are kept
            if section in d and d[section][name] == getattr(type(getattr(self, section))(), name):
                d[section].pop(name)
        if self.data.regime != "natural":  # the injection rule builds these runs' data
            d["data"]["injection_rule"] = INJECTION_RULE
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def replace(self, **overrides) -> "Config":
        """A copy with dotted overrides: ``cfg.replace(**{"data.phi": 9.0})``."""
        new = copy.deepcopy(self)
        for key, value in overrides.items():
            set_field(new, key, value)
        validate(new)
        return new

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        cfg = cls()
        for section in ("data", "model", "train", "transfer"):
            for k, v in d.get(section, {}).items():
                set_field(cfg, f"{section}.{k}", v)
        for k in ("seed", "parent", "finetune"):
            if k in d:
                set_field(cfg, k, d[k])
        return cfg


# ---------------------------------------------------------------- presets
# A preset is a scale: the graph, the optimiser and the schedule (below), and the sizes of
# each architecture at that scale (ARCHITECTURES). The book's subject is the study's
# parameter-sharing model, the TRM (SUBJECT); the dense transformer ("dense") and Wang's
# looped transformer ("looped") stand beside it for contrast.
SUBJECT = "trm"
MEMORIZED_AT = 0.99            # train_inferred accuracy: the training facts are memorized
FITTED_AT = 0.9                # train_inferred accuracy: the study's reference step ("train
                               # acc > 0.9"), the clock of train.stop_after_fitted
GROKKED_AT = 0.9               # test_inferred_iid accuracy: held-out ID queries answered (the
                               # clock of train.stop_after_grokked)
GROKKED_SPLIT = "test_inferred_iid"
MEMORIZED_SPLIT = "train_inferred"   # (analysis.definitions re-exports all three)
ARCH_NAMES = ("trm", "looped", "dense")

_WANG_OPT = {"train.ema": 0.0, "train.beta2": 0.999}     # Wang: AdamW (0.9, 0.999), no EMA

def _sizes(d: int, heads: int, trm_blocks: int, inner: int, expansion: int, ema: float,
           looped_layers: int, dense_layers: int, **trm_extra) -> dict:
    """One scale's architectures: the TRM (2 cycles, betas (0.9, 0.95), an EMA), Wang's
    looped transformer (its layers run twice) and the dense transformer, at width ``d``."""
    transformer = {"model.arch": "transformer", "model.d_model": d, "model.n_head": heads,
                   **_WANG_OPT}
    return {"trm": {"model.arch": "trm", "model.d_model": d, "model.n_head": heads,
                    "model.n_layer": trm_blocks, "model.trm_inner_steps": inner,
                    "model.trm_cycles": 2, "model.trm_expansion": expansion,
                    "train.ema": ema, "train.beta2": 0.95, **trm_extra},
            "looped": {**transformer, "model.n_layer": looped_layers, "model.n_loops": 2},
            "dense": {**transformer, "model.n_layer": dense_layers, "model.n_loops": 1}}


ARCHITECTURES = {
    # the study: hidden 1536, 2 blocks, expansion 4, 6 inner steps, 2 cycles, EMA 0.999,
    # lr 4e-5, betas (0.9, 0.95), weight decay 1.0; Wang: 8 layers x 768, or 4 run twice
    "paper": _sizes(1536, 12, 2, 6, 4, 0.999, 4, 8, **{"train.lr": 4e-5,
                                                       "train.weight_decay": 1.0}),
    "gpu": _sizes(256, 8, 2, 6, 4, 0.999, 2, 4),
    # cpu: the subject's recipe: one mixer block run 2 x (2 + 1) times, width 128, initial
    # weights x2 (Omnigrok's lever on the wait); the contrasts at the same width and their
    # own initial scale (1.0)
    "cpu": _sizes(128, 4, 1, 2, 4, 0.99, 2, 4, **{"model.init_scale": 2.0}),
    "test": _sizes(32, 2, 1, 2, 2, 0.9, 1, 2),
}


def _paper() -> Config:
    return Config()


def _cpu() -> Config:
    # Under 10 minutes of one thread per run: the recipe the subject's confirmation keeps
    # (chapters.subject; results/subject_confirmation_cpu.json, appendix A; tests hold the
    # preset to it): 100 entities with 10 of 20 relations each (free (head, relation) pairs
    # remain for the transfer chapter), 10 % OOD facts and 5 % held-out ID two-hop facts,
    # phi 5.4, weight decay 0.4, lr 6e-3. 10,700 steps is the rule's 10-minute budget at the
    # width-128 TRM's 17.9 steps/s on one thread (subject.REMEASURED); evaluation every 100
    # steps to step 6,500, log-spaced after; a run ends at twice its grokked step (claim 1's
    # "later").
    return Config(
        data=DataConfig(n_entities=100, n_relations=20, out_degree=10, phi=5.4,
                        ood_ratio=0.1, iid_test_ratio=0.05),
        train=TrainConfig(batch_size=256, lr=6e-3, weight_decay=0.4, warmup_steps=100,
                          max_steps=10700, eval_every=100, eval_dense_until=6500,
                          checkpoint_every=250, stop_after_grokked=2.0),
    )


def _test() -> Config:
    return Config(
        data=DataConfig(n_entities=60, n_relations=10, out_degree=6, phi=4.0, probe_cap=200),
        train=TrainConfig(batch_size=128, lr=1e-2, weight_decay=0.1, warmup_steps=20,
                          max_steps=200, eval_every=25, eval_dense_until=200,
                          checkpoint_every=50),
    )


def _gpu() -> Config:
    # One Colab-class GPU, tens of minutes. Not measured on a GPU yet (see README).
    return Config(
        data=DataConfig(n_entities=1000, n_relations=100, out_degree=20, phi=12.6),
        train=TrainConfig(lr=1e-3, weight_decay=0.3, warmup_steps=500, max_steps=30000,
                          eval_every=250, eval_dense_until=5000, checkpoint_every=2500),
    )


PRESETS = {"test": _test, "cpu": _cpu, "gpu": _gpu, "paper": _paper}


def preset(name: str, arch: str = SUBJECT, **overrides) -> Config:
    """A complete config for a named scale and architecture (the subject by default), with
    optional dotted overrides."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    if arch not in ARCH_NAMES:
        raise ConfigError(f"arch: {arch!r} is not allowed; allowed: {', '.join(ARCH_NAMES)}")
    return PRESETS[name]().replace(**{**ARCHITECTURES[name][arch], **overrides})


# ---------------------------------------------------------------- overrides
def field_names(cfg: Config | None = None) -> list[str]:
    cfg = cfg or Config()
    names = []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            names += [f"{f.name}.{g.name}" for g in fields(value)]
        else:
            names.append(f.name)
    return names


def _coerce(name: str, typ, value):
    typ = {"int": int, "float": float, "str": str, "bool": bool}.get(typ, typ)
    if isinstance(value, str) and typ is not str:
        text = value.strip()
        try:
            if typ is bool:
                if text.lower() in ("1", "true", "yes"):
                    return True
                if text.lower() in ("0", "false", "no"):
                    return False
                raise ValueError
            if typ is int:
                return int(float(text)) if float(text).is_integer() else int(text)
            return typ(text)
        except (ValueError, OverflowError):
            raise ConfigError(f"{name}: cannot read {value!r} as {typ.__name__}") from None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"{name}: expected {typ.__name__}, got {value!r}")
    return value


def set_field(cfg: Config, dotted: str, value) -> None:
    parts = dotted.split(".")
    target = cfg
    for p in parts[:-1]:
        sub = getattr(target, p, None)
        if not dataclasses.is_dataclass(sub):
            raise ConfigError(f"{dotted}: unknown field; valid fields: {', '.join(field_names(cfg))}")
        target = sub
    hints = {f.name: f.type for f in fields(target)}
    if parts[-1] not in hints or dataclasses.is_dataclass(getattr(target, parts[-1])):
        raise ConfigError(f"{dotted}: unknown field; valid fields: {', '.join(field_names(cfg))}")
    setattr(target, parts[-1], _coerce(dotted, hints[parts[-1]], value))


def parse_sets(items: typing.Iterable[str]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. data.phi=18")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


# ---------------------------------------------------------------- validation
def _check(ok: bool, name: str, value, allowed: str):
    if not ok:
        raise ConfigError(f"{name}: {value!r} is not allowed; allowed: {allowed}")


PRECISIONS = ("auto", "fp32", "tf32", "bf16")
OPTIMIZERS = ("adamw", "muon")
LOSSES = ("softmax", "stablemax")

# Generous ceilings: beyond them a graph would not fit in memory or a run would never end.
MAX_ENTITIES, MAX_RELATIONS, MAX_TWO_HOP = 1_000_000, 100_000, 50_000_000
MAX_STEPS, MAX_SEED = 100_000_000, 2**32 - 1


def _finite(cfg: Config) -> None:
    """Every float field finite: inf and nan are never a meaningful setting."""
    for name in field_names(cfg):
        obj = cfg
        for part in name.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, float) and not math.isfinite(obj):
            raise ConfigError(f"{name}: {obj!r} is not allowed; allowed: a finite number")


def validate(cfg: Config) -> None:
    """Raise ConfigError naming the first field whose value is impossible."""
    d, m, t = cfg.data, cfg.model, cfg.train
    _finite(cfg)
    _check(0 <= cfg.seed <= MAX_SEED, "seed", cfg.seed, f"an integer from 0 to {MAX_SEED}")
    _check(0 <= t.grokfast_alpha < 1, "train.grokfast_alpha", t.grokfast_alpha,
           "a number from 0 up to (not including) 1")
    _check(t.grokfast_lamb >= 0, "train.grokfast_lamb", t.grokfast_lamb, "0 (off) or more")
    _check(-1 <= t.init_seed <= MAX_SEED, "train.init_seed", t.init_seed,
           f"-1 (the run's seed) or an integer from 0 to {MAX_SEED}")
    for name in ("n_entities", "n_relations", "out_degree", "probe_cap"):
        v = getattr(d, name)
        _check(v > 0, f"data.{name}", v, "a positive integer")
    _check(d.n_entities <= MAX_ENTITIES, "data.n_entities", d.n_entities,
           f"1 to {MAX_ENTITIES:,}")
    _check(d.n_relations <= MAX_RELATIONS, "data.n_relations", d.n_relations,
           f"1 to {MAX_RELATIONS:,}")
    _check(d.out_degree <= d.n_relations, "data.out_degree", d.out_degree,
           f"1 to data.n_relations ({d.n_relations}): each head has distinct relations")
    _check(d.n_entities * d.out_degree ** 2 <= MAX_TWO_HOP, "data.out_degree", d.out_degree,
           f"a value with n_entities x out_degree^2 <= {MAX_TWO_HOP:,} two-hop facts "
           f"(n_entities is {d.n_entities})")
    _check(0 < d.ood_ratio < 1, "data.ood_ratio", d.ood_ratio, "strictly between 0 and 1")
    _check(0 < d.iid_test_ratio < 1, "data.iid_test_ratio", d.iid_test_ratio,
           "strictly between 0 and 1")
    _check(d.phi >= 0, "data.phi", d.phi, "0 or more (and at most the graph's max_phi)")
    _check(d.regime in REGIMES, "data.regime", d.regime, ", ".join(REGIMES))
    _check(m.arch in ("transformer", "trm"), "model.arch", m.arch, "transformer, trm")
    for name, most in (("n_layer", 256), ("n_loops", 256), ("d_model", 65536), ("n_head", 1024),
                       ("trm_inner_steps", 256), ("trm_cycles", 256), ("trm_expansion", 64)):
        v = getattr(m, name)
        _check(0 < v <= most, f"model.{name}", v, f"an integer from 1 to {most}")
    _check(m.d_model % m.n_head == 0, "model.n_head", m.n_head,
           f"a divisor of model.d_model ({m.d_model})")
    _check(0 <= m.dropout < 1, "model.dropout", m.dropout, "0 <= dropout < 1")
    for name in ("batch_size", "max_steps", "eval_every", "checkpoint_every", "eval_per_decade"):
        v = getattr(t, name)
        _check(0 < v <= MAX_STEPS, f"train.{name}", v, f"an integer from 1 to {MAX_STEPS:,}")
    _check(0 <= t.eval_dense_until <= MAX_STEPS, "train.eval_dense_until", t.eval_dense_until,
           f"0 to {MAX_STEPS:,}")
    _check(t.lr > 0, "train.lr", t.lr, "a positive number")
    _check(t.weight_decay >= 0, "train.weight_decay", t.weight_decay, "0 or more")
    _check(0 <= t.warmup_steps <= MAX_STEPS, "train.warmup_steps", t.warmup_steps,
           f"0 to {MAX_STEPS:,}")
    _check(t.grad_clip >= 0, "train.grad_clip", t.grad_clip, "0 (off) or more")
    _check(0 <= t.beta1 < 1, "train.beta1", t.beta1, "0 <= beta1 < 1")
    _check(0 <= t.beta2 < 1, "train.beta2", t.beta2, "0 <= beta2 < 1")
    _check(0 <= t.ema < 1, "train.ema", t.ema, "0 (off) <= ema < 1")
    _check(0 <= t.stop_at <= 1, "train.stop_at", t.stop_at, "0 (off) to 1")
    for name in ("stop_after_fitted", "stop_after_grokked"):
        v = getattr(t, name)
        _check(v == 0 or v >= 1, f"train.{name}", v, "0 (off) or a multiple >= 1")
    _check(t.device in ("auto", "cpu", "cuda"), "train.device", t.device, "auto, cpu, cuda")
    _check(t.precision in PRECISIONS, "train.precision", t.precision, ", ".join(PRECISIONS))
    _check(t.optimizer in OPTIMIZERS, "train.optimizer", t.optimizer, ", ".join(OPTIMIZERS))
    _check(t.muon_lr > 0, "train.muon_lr", t.muon_lr, "a positive number")
    _check(0 <= t.muon_momentum < 1, "train.muon_momentum", t.muon_momentum, "0 <= momentum < 1")
    _check(t.loss in LOSSES, "train.loss", t.loss, ", ".join(LOSSES))
    _check(0 < m.init_scale <= 100, "model.init_scale", m.init_scale,
           "a number above 0 and at most 100 (1: the architecture's own initialisation)")
    tr = cfg.transfer
    _check(0 <= tr.chain_fraction <= 1, "transfer.chain_fraction", tr.chain_fraction, "0 to 1")
    for name in ("new_facts", "replay", "probe_cap"):
        v = getattr(tr, name)
        _check(0 <= v <= MAX_TWO_HOP, f"transfer.{name}", v,
               "0 (scaled to the graph) or a positive count")
    _check(1 <= tr.control_per_fact <= 100, "transfer.control_per_fact", tr.control_per_fact,
           "1 to 100")
    if cfg.finetune:
        validate_transfer(cfg)


# The transfer sets a fine-tuning run may name (``Config.finetune``; built by core.newknowledge)
TRANSFER_SETS = ("new_knowledge", "new_knowledge_hop2_control")


# ---------------------------------------------------------------- transfer sets
def transfer_sizes(cfg) -> dict:
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
    d = cfg.data
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
    s = transfer_sizes(cfg)
    if not 0 < s["new_facts"] <= s["free_pairs"]:
        raise ConfigError(f"transfer.new_facts: {s['new_facts']} is not allowed; allowed: 1 to "
                          f"{s['free_pairs']} (the free (head, relation) pairs of this graph)")
    if cfg.parent:
        rid, at, step = cfg.parent.partition("@")
        if not rid or (at and not step.isdigit()):
            raise ConfigError(f"parent: {cfg.parent!r} is not allowed; allowed: '<run id>@<step>'")
