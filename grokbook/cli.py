"""Command line: ``grokbook data|train|book|runs ...`` (also ``python -m grokbook``)."""
from __future__ import annotations

import argparse
import json
import sys

from .config import ConfigError, parse_sets, preset


def _config(args):
    return preset(args.preset, **parse_sets(args.set))


def _add_config_args(p):
    p.add_argument("--preset", default="cpu", help="test, cpu, gpu or paper (default cpu)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set data.phi=18 --set model.n_layer=8")


def cmd_data(args):
    from .data import build_dataset, export_json, load_json
    if args.from_json:
        ds = load_json(args.from_json)
    else:
        cfg = _config(args)
        ds = build_dataset(cfg.data, cfg.seed)
    s = ds.summary()
    keys = ["n_entities", "n_relations", "atomic", "id_atomic", "ood_atomic", "train_inferred",
            "test_inferred_iid", "test_inferred_ood", "max_phi", "vocab_size", "probes"]
    out = {k: s.get(k) for k in keys}
    if args.export:
        out["exported_to"] = str(export_json(ds, args.export))
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>18}: {v}")
    return 0


def cmd_train(args):
    from .runs import train
    cfg = _config(args)
    if args.from_json:
        cfg = cfg.replace(**{"data.from_json": args.from_json})
    run = train(cfg, store=args.store, progress=not args.quiet)
    s = run.summary()
    if args.json:
        print(json.dumps(s))
    else:
        for k, v in s.items():
            print(f"{k:>18}: {v}")
    return 0


def cmd_runs(args):
    from .runs import list_runs, load_run, remove_run, store_path
    if args.action == "ls":
        for rid in list_runs(args.store):
            try:
                print(json.dumps(load_run(rid, args.store).summary()))
            except Exception as e:  # a corrupt run is listed, with why
                print(json.dumps({"run": rid, "error": str(e)}))
    elif args.action == "rm":
        for rid in args.ids:
            print(f"removed {remove_run(rid, args.store)}")
    elif args.action == "path":
        print(store_path(args.store))
    return 0


def cmd_book(args):
    from .book import build_book
    chapters = args.chapters.split(",") if args.chapters else None
    return build_book(preset=args.preset, chapters=chapters, executed_dir=args.executed_dir,
                      html=not args.no_html)


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
    p.set_defaults(func=cmd_book)

    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError) as e:
        print(f"grokbook: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
