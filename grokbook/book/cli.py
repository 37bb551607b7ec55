"""Command line: ``grokbook data|train|book|runs ...`` (also ``python -m grokbook``)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..analysis.definitions import run_summary
from ..analysis.lens import bridge_rates, lens_summary, logit_lens
from ..analysis.patching import causal_tracing
from ..core.config import ConfigError, parse_sets, preset
from ..core.data import build_dataset, export_json, load_json
from ..core.store import (RunStoreError, list_runs, load_run, remove_run, store_path,
                          train)
from ..core.train import THREADS_ENV, thread_count
from .bench import bench, bench_arch, bench_many, format_report


def _config(args):
    return preset(args.preset, **parse_sets(args.set))


def _emit(out: dict, as_json: bool, width: int = 18) -> int:
    """Print a result: one JSON line, or aligned ``key: value`` lines."""
    if as_json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>{width}}: {v}")
    return 0


def _add_config_args(p):
    p.add_argument("--preset", default="cpu", help="test, cpu, gpu or paper (default cpu)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set data.phi=18 --set model.n_layer=8")


def _add_threads_arg(p):
    p.add_argument("--threads", type=int, help="torch threads per training process (default: "
                   "$GROKBOOK_THREADS or 1; the numbers depend on it, the run id does not)")


def _apply_threads(args):
    if getattr(args, "threads", None) is not None:
        thread_count(args.threads)  # refuses 0 or less, naming --threads
        os.environ[THREADS_ENV] = str(args.threads)  # chapters' kernels inherit it


def cmd_data(args):
    if args.from_json:
        ds = load_json(args.from_json)
    else:
        cfg = _config(args)
        ds = build_dataset(cfg.data, cfg.seed)
    s = ds.summary()
    keys = ["n_entities", "n_relations", "atomic", "id_atomic", "ood_atomic", "train_inferred",
            "test_inferred_iid", "test_inferred_ood", "max_phi", "vocab_size", "probes",
            "augmented", "hop1_pool", "hop1_added", "hop2_pool", "hop2_added", "train"]
    out = {k: s.get(k) for k in keys if k in s or not k.endswith("_pool")}
    if args.export:
        out["exported_to"] = str(export_json(ds, args.export))
    return _emit(out, args.json)


def cmd_train(args):
    cfg = _config(args)
    if args.from_json:
        from pathlib import Path
        cfg = cfg.replace(**{"data.from_json": str(Path(args.from_json).absolute())})
    run = train(cfg, store=args.store, progress=not args.quiet)
    return _emit(run_summary(run), args.json)


def cmd_runs(args):
    if args.action == "ls":
        for rid in list_runs(args.store):
            try:
                print(json.dumps(run_summary(load_run(rid, args.store))))
            except Exception as e:  # a corrupt run is listed, with why
                print(json.dumps({"run": rid, "error": str(e)}))
    elif args.action == "rm":
        if not args.ids:
            raise ValueError("runs rm: give the id of the run to remove (`grokbook runs ls` "
                             "lists them)")
        for rid in args.ids:
            path = remove_run(rid, args.store)
            print(f"removed run {path.name} ({path})")
    elif args.action == "path":
        print(store_path(args.store, create=False))
    return 0


def cmd_book(args):
    from .pipeline import build_book, find_root   # the book's tools: only when building it
    chapters = None
    if args.chapters is not None:
        chapters = [c.strip() for c in args.chapters.split(",") if c.strip()]
        if not chapters:
            raise ValueError(f"--chapters: {args.chapters!r} names no chapter; give numbers "
                             f"separated by commas, e.g. 01,02")
    pool = None
    if args.ray:
        from ..chapters.ray_executor import RayRunPool
        from ..core.store import store_path
        pool = RayRunPool(store_path(), address=None if args.ray == "local" else args.ray)
    try:
        return build_book(preset=args.preset, chapters=chapters,
                          executed_dir=args.executed_dir, html=not args.no_html,
                          root=find_root(args.root), train_only=args.train_only, pool=pool)
    finally:
        if pool is not None:
            pool.close()


def cmd_plan(args):
    """Every run of the book's plan, its state in the store and predicted cost."""
    from ..chapters.plans import plan_summary, plan_table
    from ..core.config import PRESETS
    if args.preset not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {args.preset!r}; allowed: "
                          f"{', '.join(PRESETS)}")
    chapters = _chapter_numbers(args.chapters)
    table = plan_table(args.preset, chapters, store=args.store, measure=not args.no_measure)
    summary = plan_summary(table)
    if args.json:
        print(json.dumps({"preset": args.preset, "summary": summary,
                          "runs": json.loads(table.to_json(orient="records"))}))
        return 0
    for r in table.itertuples():
        secs = f"{r.seconds:7.0f} s" if r.seconds == r.seconds and r.seconds else "      -  "
        print(f"{r.chapter} {r.state:>9} {secs} {r.run or '-':>12}  {r.name}"
              + (f"  [{r.reason}]" if r.reason else ""))
    print(f"{summary['runs']} runs, {summary['stored']} in the store, {summary['to_train']} "
          f"to train ({_cost_words(summary)})"
          + (f", {summary['waiting']} waiting on those results" if summary["waiting"] else ""))
    return 0


def _cost_words(summary: dict) -> str:
    """The predicted time of the runs to train, and how many could not be predicted."""
    parts = []
    if summary["unpredicted"] < summary["to_train"] or not summary["to_train"]:
        parts.append(f"at most about {summary['seconds_to_train'] / 60:.0f} min of one worker "
                     f"(every run at its full budget)")
    if summary["unpredicted"]:
        parts.append(f"{summary['unpredicted']} not predicted: their shapes' speed is not "
                     f"measured yet, run without --no-measure")
    return "; ".join(parts)


def _chapter_numbers(text):
    if text is None:
        return None
    out = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in out if not (c.isdigit() and len(c) == 2)]
    if not out or bad:
        raise ValueError(f"--chapters: {text!r} is not allowed; allowed: two-digit chapter "
                         f"numbers separated by commas, e.g. 02,03")
    return out


def cmd_paths(args):
    """Lens + causal tracing of N queries at every stage and position of one checkpoint."""
    import time
    t0 = time.perf_counter()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.queries < 1:
        raise ValueError(f"--queries: {args.queries} is not allowed; allowed: 1 or more")
    run = train(_config(args), store=args.store, progress=not args.json)
    t1 = time.perf_counter()
    step = run.checkpoints[-1] if args.step is None else args.step
    if step not in run.checkpoints:
        raise ValueError(f"--step: {step} is not a checkpoint of run {run.id}; allowed: "
                         f"{', '.join(map(str, run.checkpoints))}")
    ds = run.dataset
    if args.probe not in ds.probes:
        raise ValueError(f"--probe: {args.probe!r} is not allowed; allowed: "
                         f"{', '.join(ds.probes)}")
    model = run.load_model(step)
    queries = {k: v[:args.queries] for k, v in ds.probes[args.probe].items()}
    t2 = time.perf_counter()
    lens = logit_lens(model, ds, queries)
    summary = lens_summary(lens)
    t3 = time.perf_counter()
    tracing = causal_tracing(model, ds, queries)
    t4 = time.perf_counter()
    out = {"run": run.id, "step": int(step), "probe": args.probe,
           "queries": int(len(queries["h"])), "stages": len(model.stage_names),
           "positions": int(summary["position"].nunique()),
           "bridge": bridge_rates(lens),
           "tracing_max_strength": {k: round(float(v), 4) for k, v in
                                    tracing.groupby("swap")["strength"].max().items()},
           "seconds": {"run": round(t1 - t0, 3), "load": round(t2 - t1, 3),
                       "lens": round(t3 - t2, 3), "tracing": round(t4 - t3, 3),
                       "analysis": round(t4 - t2, 3)}}
    return _emit(out, args.json, 22)


def cmd_claims(args):
    """Every verdict of the scorecard computed from the store (training what is missing), as
    JSON objects ``{"verdict", "rule", "this_book", "evidence", "runs"}``; claim 1 also for
    the architectures beside the subject, on the first claim seed.
    ``--only claim1`` computes claim 1 alone."""
    from ..chapters import paths, verdict
    from ..core.config import ARCH_NAMES, PRESETS, SUBJECT
    if args.preset not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {args.preset!r}; allowed: "
                          f"{', '.join(PRESETS)}")
    archs = args.arch or [SUBJECT, "dense"]
    for a in archs:
        if a not in ARCH_NAMES:
            raise ConfigError(f"--arch: {a!r} is not allowed; allowed: {', '.join(ARCH_NAMES)}")
    out = {"preset": args.preset}
    if args.only is None:
        book = verdict.collect(args.preset, store=args.store, progress=not args.json)
        out.update(verdict.verdicts(verdict.claim_numbers(book)))
    key = "claim1_same_path"
    for a in archs:
        if a == SUBJECT and key in out:
            continue
        if a == SUBJECT:
            evs = paths.claim1_seeds(args.preset, store=args.store)
        else:
            evs = [paths.claim1(args.preset, a, store=args.store,
                                seed=paths.claim_seeds(args.preset)[0])]
        out[key if a == SUBJECT else f"{key}_{a}"] = verdict.claim1_object({"per_seed": evs})
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            if k != "preset":
                print(f"{k} ({args.preset}): {v['verdict']}\n  {v['this_book']}")
    return 0


def cmd_subject(args):
    """The subject's declared search (``--search``), or its confirmation on fresh seeds."""
    from ..chapters import subject
    if args.no_train and (args.search or args.refine):
        raise ConfigError("--no-train reports the confirmation only; it cannot be used "
                          "with --search or --refine")
    if args.round is not None and (args.search or args.refine or args.no_train):
        raise ConfigError("--round trains one confirmation round; it cannot be used with "
                          "--search, --refine or --no-train")
    if args.search and args.refine:
        raise ConfigError("--search and --refine are two declared searches; give one")
    if args.scout and (args.search or args.refine or args.no_train or args.round is not None):
        raise ConfigError("--scout trains the declared scout for a fifth round; it cannot be "
                          "used with --search, --refine, --no-train or --round")
    if args.search or args.refine:
        out = subject.search(args.preset, device=args.device, precision=args.precision,
                             store=args.store, out=args.out, workers=args.workers,
                             group_size=args.group_size, progress=False,
                             log=lambda m: print(f"grokbook subject: {m}", file=sys.stderr,
                                                 flush=True), refine=args.refine)
        chosen = out["chosen"]
        path = args.out or subject.summary_path(args.preset, ".", args.refine)
        return _emit({"preset": args.preset, "summary": str(path), "chosen": chosen},
                     args.json)
    if args.scout:
        out = subject.scout(args.preset,
                            subject.confirmation_record(args.preset, store=args.store),
                            store=args.store, workers=args.workers)
    elif args.round is not None:
        out = subject.confirm_round(args.preset, args.round,
                                    subject.confirmation_record(args.preset, store=args.store),
                                    store=args.store, workers=args.workers)
    else:
        out = subject.confirmation(args.preset, store=args.store, progress=not args.json,
                                   train=not args.no_train, workers=args.workers)
    if out["pending"] and not args.out:     # a partial read never replaces the record
        print(f"grokbook subject: {len(out['pending'])} confirmation run(s) not in the "
              f"store; the summary was not written (give --out to write it anyway)",
              file=sys.stderr)
    else:
        subject.write_confirmation(out, args.out or
                                   subject.confirmation_path(args.preset, "."))
    if args.json:
        print(json.dumps(out))
    else:
        print(subject.describe_confirmation(out))
    return 0


def cmd_shortcuts(args):
    """Chapter 7's shortcut tuning (``--tune``), or the settings it chose."""
    from ..chapters import shortcuts
    if args.tune:
        out = shortcuts.tune(args.preset, store=args.store, out=args.out,
                             workers=args.workers,
                             log=lambda m: print(f"grokbook shortcuts: {m}", file=sys.stderr,
                                                 flush=True))
        return _emit({"preset": args.preset, "summary": args.out or
                      f"results/shortcut_tuning_{args.preset}.json",
                      "chosen": out["chosen"]}, args.json, width=34)
    chosen = shortcuts.tuned(args.preset)
    out = {s.label: (shortcuts._setting(s.label, chosen[s.label]) if s.label in chosen
                     else "not tuned (grokbook shortcuts --tune)")
           for s in shortcuts.SHORTCUTS}
    return _emit(out, args.json, width=34)


def cmd_bench(args):
    """Time grokbook's training step against a Wang-style Hugging Face loop, or
    (``--profile``) where one real run's wall time goes."""
    if args.profile is not None:
        from .profile import format_profile, profile_run
        if args.profile < 1:
            raise ConfigError(f"--profile: {args.profile} steps; allowed: 1 or more")
        _apply_threads(args)
        p = profile_run(_config(args), steps=args.profile)
        print(json.dumps(p) if args.json else format_profile(p))
        return 0
    r = bench(_config(args), device=args.device, steps=args.steps, repeats=args.repeats,
              warmup=args.warmup, baseline=args.baseline, threads=args.threads,
              compile=args.compile, compile_timeout=args.compile_timeout,
              autocast="bf16" if args.bf16 else None, split=not args.no_split,
              preset_name=args.preset, baseline_steps=args.baseline_steps,
              baseline_repeats=args.baseline_repeats, baseline_vocab=args.baseline_vocab,
              compile_mode=args.compile_mode)
    print(json.dumps(r) if args.json else format_report(r))
    return 0


def cmd_bench_arch(args):
    out = bench_arch(args.preset, steps=args.steps, repeats=args.repeats,
                     archs=args.archs.split(","))
    return _emit(out, args.json, 12)


def cmd_bench_many(args):
    ks = tuple(int(k) for k in args.ks.split(","))
    out = bench_many(args.preset, ks=ks, archs=args.archs.split(","), steps=args.steps,
                     repeats=args.repeats, processes=args.processes, threads=args.threads)
    if args.json:
        print(json.dumps(out))
        return 0
    for arch, rows in out["archs"].items():
        for k, r in rows.items():
            print(f"{arch:>12} K={k:<3} total {r['total_steps_per_second']:8.1f} steps/s  "
                  f"speed-up {r['speedup']}x  ({r['processes']} process(es) x "
                  f"{r['members_per_process']} members)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="grokbook", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("data", help="build a dataset and report its sizes")
    _add_config_args(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--export", metavar="DIR", help="write it in the original JSON format")
    p.add_argument("--from-json", metavar="DIR", help="read data in the original JSON format")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train (or load from the store) one run")
    _add_config_args(p)
    _add_threads_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--store", help="run store directory (default $GROKBOOK_STORE or ~/.cache/grokbook)")
    p.add_argument("--from-json", metavar="DIR", help="train on data in the original JSON format")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", help="list or remove stored runs")
    p.add_argument("action", choices=["ls", "rm", "path"])
    p.add_argument("ids", nargs="*")
    p.add_argument("--store")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("book", help="execute the chapters with papermill and build the HTML")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--chapters", help="comma-separated chapter numbers, e.g. 01,02")
    p.add_argument("--executed-dir", help="render executed notebooks from this folder instead")
    p.add_argument("--no-html", action="store_true", help="execute only")
    p.add_argument("--root", help="the book's folder (holding _toc.yml); default: the current "
                                  "directory or the nearest parent that has one")
    p.add_argument("--train-only", action="store_true", help="train the book's plan, then "
                   "stop (execute nothing)")
    p.add_argument("--ray", metavar="ADDRESS", help="train the plan on Ray: 'local' starts a "
                   "local instance; an address ('auto', 'ray://host:10001') joins a cluster "
                   "(the run store must be a folder every node sees)")
    _add_threads_arg(p)
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("plan", help="every run the book needs: chapter, role, run id, state "
                       "in the store, predicted seconds on this machine")
    p.add_argument("--preset", default="cpu", help="test, cpu, gpu or paper (default cpu)")
    p.add_argument("--chapters", help="comma-separated chapter numbers, e.g. 02,03")
    p.add_argument("--no-measure", action="store_true", help="do not time unmeasured shapes "
                   "(their runs get no predicted seconds)")
    p.add_argument("--store", help="run store directory (default $GROKBOOK_STORE or ~/.cache/grokbook)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("paths", help="logit lens + causal tracing of one checkpoint, timed")
    _add_config_args(p)
    p.add_argument("--queries", type=int, default=1000, help="how many probe queries")
    p.add_argument("--probe", default="train_inferred")
    p.add_argument("--step", type=int, help="checkpoint step (default: the last)")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--store")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_paths)

    p = sub.add_parser("claims", help="every verdict of the scorecard with its evidence")
    p.add_argument("--preset", default="cpu", help="test, cpu, gpu or paper (default cpu)")
    p.add_argument("--arch", action="append", help="architecture(s) for claim 1 (default: "
                   "trm, then dense beside it)")
    p.add_argument("--only", choices=["claim1"], help="compute only this claim (claim 1: "
                   "its runs alone, not the whole book's)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--store", help="run store directory (default $GROKBOOK_STORE or ~/.cache/grokbook)")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("subject", help="the book's subject: its confirmation on fresh seeds, "
                       "or (--search) the declared recipe search that chose it")
    p.add_argument("--preset", default="cpu", help="test or cpu (default cpu)")
    p.add_argument("--search", action="store_true", help="run the declared search (hours on "
                   "a CPU, minutes on a GPU) and write its summary")
    p.add_argument("--refine", action="store_true", help="run the declared refinement near "
                   "the search's winner (its winner is the recipe of the third and fourth "
                   "confirmation rounds) and write its summary")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="where the search trains (default cpu)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "tf32", "bf16"],
                   help="the search's train.precision (default auto)")
    p.add_argument("--workers", type=int, help="training processes at once, one thread "
                   "each (default $GROKBOOK_WORKERS or 1)")
    p.add_argument("--no-train", action="store_true", help="report the confirmation runs "
                   "the store holds; train nothing (the rest are listed as pending)")
    p.add_argument("--scout", action="store_true", help="train the declared scout on the "
                   "fourth round's seeds and record whether a fifth round is trained")
    p.add_argument("--round", type=int, help="train this confirmation round alone, beside "
                   "the earlier rounds of the committed record (which must all have failed)")
    p.add_argument("--group-size", type=int, help="runs stacked into one network (GPU)")
    p.add_argument("--out", help="the summary's path (default results/subject_search_"
                   "<preset>.json, or results/subject_confirmation_<preset>.json)")
    p.add_argument("--store", help="run store directory (default $GROKBOOK_STORE or ~/.cache/grokbook)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_subject)

    p = sub.add_parser("shortcuts", help="chapter 7's shortcuts: the settings their tuning "
                       "chose, or (--tune) the declared tuning that chooses them")
    p.add_argument("--preset", default="cpu", help="test or cpu (default cpu)")
    p.add_argument("--tune", action="store_true", help="train every shortcut at every value "
                   "of its grid on the tuning seeds and write the summary")
    p.add_argument("--workers", type=int, help="training processes at once")
    p.add_argument("--out", help="the tuning summary's path (default "
                   "results/shortcut_tuning_<preset>.json)")
    p.add_argument("--store", help="run store directory (default $GROKBOOK_STORE or ~/.cache/grokbook)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_shortcuts)

    p = sub.add_parser("bench", help="time training steps (grokbook vs a Wang-style loop)")
    _add_config_args(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=3, help="repeats; medians are reported")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also time Wang's way (transformers GPT2LMHeadModel); default on")
    p.add_argument("--baseline-steps", type=int, help="timed baseline steps per repeat")
    p.add_argument("--baseline-repeats", type=int, help="baseline repeats")
    p.add_argument("--baseline-vocab", choices=["gpt2", "graph"], default="gpt2",
                   help="gpt2: 50257 unused rows + the graph's tokens (Wang); graph: only those")
    p.add_argument("--threads", type=int, help="torch.set_num_threads for the run")
    p.add_argument("--compile", action="store_true", help="torch.compile grokbook's model")
    p.add_argument("--compile-mode", help="torch.compile mode, e.g. reduce-overhead (CUDA graphs)")
    p.add_argument("--compile-timeout", type=float, default=300,
                   help="give up on torch.compile after this many seconds of warm-up")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on CPU too")
    p.add_argument("--no-split", action="store_true", help="skip the forward/backward split")
    p.add_argument("--profile", type=int, metavar="STEPS", help="instead: train the config "
                   "for STEPS steps through the run store (a scratch one) and report the wall "
                   "fractions of data, forward, backward, optimizer, evaluation, checkpoints, "
                   "the FLOP/s achieved and the measured GEMM peak at the model's shapes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-arch", help="steps/s of the chapter-5 architectures")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--steps", type=int, default=30, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--archs", default="dense,looped,trm")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_arch)

    p = sub.add_parser("bench-many", help="steps/s of K runs trained together")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--ks", default="1,2,4,8,16", help="group sizes to time")
    p.add_argument("--archs", default="dense,looped,trm")
    p.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--processes", type=int, default=1, help="groups running at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_many)

    args = ap.parse_args(argv)
    try:
        if args.cmd in ("train", "book"):
            _apply_threads(args)
        return args.func(args)
    except (ConfigError, ValueError) as e:
        print(f"grokbook: error: {e}", file=sys.stderr)
        return 2
    except RunStoreError as e:
        print(f"grokbook: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("grokbook: interrupted; a run in progress resumes from its last checkpoint "
              "when asked for again", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
