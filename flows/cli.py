"""The `tradewatch` command line: each verb a thin call into `flows`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ingest.symbols import InvalidSymbol, parse_symbol_list


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other failure
        self.exit(2, f"tradewatch: {message} (see `tradewatch --help`)\n")


def _symbols(text: str) -> tuple[str, ...]:
    try:
        return parse_symbol_list(text)
    except InvalidSymbol as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive(kind: type) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (as fast as the client reads) or positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb."""
    parser = _Parser(prog="tradewatch", description="Trade-anomaly platform.")
    parser.add_argument("--config", type=Path, help="project_config.yml to use")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    simulate = verbs.add_parser("simulate", help="serve the simulated market on 127.0.0.1")
    simulate.add_argument("--seed", type=int, help="seed of the market (default: settings)")
    simulate.add_argument("--port", type=int, default=8765, help="Finnhub WebSocket port (0: any)")
    simulate.add_argument("--av-port", type=int, default=8766, help="Alpha Vantage HTTP port")
    simulate.add_argument("--speed", type=_speed, help="0 = as fast as the client reads")
    simulate.add_argument("--duration", type=_positive(float), help="simulated seconds to serve")
    simulate.add_argument("--max-trades", type=_positive(int), help="stop after this many trades")

    collect = verbs.add_parser("collect", help="run a collector")
    sources = collect.add_subparsers(dest="source", required=True, parser_class=_Parser)
    finnhub = sources.add_parser("finnhub", help="Finnhub WebSocket trades")
    finnhub.add_argument("--url", help="WebSocket URL (the simulator's: no API key needed)")
    finnhub.add_argument("--symbols", type=_symbols, help="comma-separated, e.g. AAPL,MSFT")
    finnhub.add_argument("--duration", type=_positive(float), help="seconds to collect")
    finnhub.add_argument("--max-trades", type=_positive(int), help="stop after this many trades")
    alpha = sources.add_parser("alphavantage", help="Alpha Vantage bars")
    alpha.add_argument("--url", help="base URL (the simulator's: no API key needed)")
    alpha.add_argument("--symbols", type=_symbols, help="comma-separated, e.g. AAPL,MSFT")
    alpha.add_argument("--interval", choices=["1min", "5min", "15min", "30min", "60min", "daily"],
                       help="bar interval (default: settings)")

    transform = verbs.add_parser(
        "transform",
        help="dbt build, then the data-quality checkpoint (alerts; exit 1 on a critical failure)",
    )
    transform.add_argument("--target", choices=["local", "databricks", "spark"],
                           help="dbt target (default: settings)")
    transform.add_argument("--full-refresh", action="store_true",
                           help="rebuild incremental models from scratch")

    validate = verbs.add_parser("validate", help="the data-quality checkpoint; writes Data Docs")
    validate.add_argument("--target", choices=["local", "databricks"],
                          help="warehouse to validate (default: settings)")
    skip_help = ("train/score without the data-quality gate (an explicit override, written to "
                 "the audit log)")
    train = verbs.add_parser("train", help="quality gate → tournament → gate → promote → score")
    train.add_argument("--skip-quality-gate", action="store_true", help=skip_help)
    score = verbs.add_parser(
        "score", help="quality gate → champion scores for every trade it has not scored → "
        "publish gold_anomaly_scores"
    )
    score.add_argument("--skip-quality-gate", action="store_true", help=skip_help)
    cycle = verbs.add_parser(
        "cycle", help="one scoring cycle: collect → dbt build → quality → score → publish → "
        "report (the scoring-cycle deployment runs it every 5 minutes)"
    )
    cycle.add_argument("--collect-seconds", type=float,
                       help="collect this long first (default: cycle.collect_seconds; 0: "
                       "take what the running collector landed)")
    cycle.add_argument("--url", help="Finnhub WebSocket URL to collect from (the simulator's)")
    cycle.add_argument("--skip-quality-gate", action="store_true", help=skip_help)
    verbs.add_parser("rollback", help="champion back to the previous version (the next cycle "
                     "re-scores what the demoted version scored)")
    drift = verbs.add_parser("drift", help="drift report and the retraining decision")
    drift.add_argument("--current-hours", type=_positive(float), help="newest window, hours")
    drift.add_argument("--reference-hours", type=_positive(float), help="window before, hours")

    audit = verbs.add_parser("audit", help="check or repair the audit log's record chain")
    audit_verbs = audit.add_subparsers(dest="audit_verb", required=True, parser_class=_Parser)
    audit_verbs.add_parser("verify", help="check the chain; exit 1 while it is damaged")
    repair = audit_verbs.add_parser(
        "repair", help="acknowledge the damage on record (retraining waits a day after)"
    )
    repair.add_argument("--reason", required=True, help="what happened and who checked it")
    repair.add_argument("--operator", help="who repairs (default: the login name)")

    model = verbs.add_parser("model", help="registered model versions")
    model_verbs = model.add_subparsers(dest="model_verb", required=True, parser_class=_Parser)
    trust = model_verbs.add_parser(
        "trust", help="record a version's content hash after checking it (audited)"
    )
    trust.add_argument("version", help="registered version number")
    trust.add_argument("--reason", required=True, help="what was checked, and by whom")

    verbs.add_parser("report", help="the monitoring report (self-contained HTML)")
    verbs.add_parser("serve", help="serve every Prefect deployment from one process")
    ui = verbs.add_parser(
        "ui", help="Prefect UI, MLflow UI, dbt docs and the documentation site on 127.0.0.1"
    )
    ui.add_argument("--prefect-port", type=int, default=4200, help="Prefect UI port")
    ui.add_argument("--mlflow-port", type=int, default=5000, help="MLflow UI port")
    ui.add_argument("--docs-port", type=int, default=8080, help="dbt docs port")
    ui.add_argument("--site-port", type=int, default=8000, help="documentation site port")

    demo = verbs.add_parser("demo", help="the whole pipeline on DuckDB with the simulated market")
    demo.add_argument("--seed", type=int, help="seed of the market (default: settings)")
    demo.add_argument("--minutes", type=_positive(float), help="simulated trading minutes")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    from flows.config import load_settings

    settings = load_settings(args.config)
    # Flow runs, and the Prefect UI of `tradewatch ui`, share one Prefect database per data home.
    os.environ.setdefault("PREFECT_HOME", str(settings.paths.home / "prefect"))
    # Prefect creates its database file but not missing parent folders (a fresh clone's data/).
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    # Without a Prefect server, flows start a temporary one; Prefect waits 20 s for it, which a
    # busy two-core machine can miss on a first run (its database is created then). Wait longer.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if args.verb == "simulate":
        from flows.simulate import run_simulate

        return run_simulate(
            settings,
            seed=args.seed,
            port=args.port,
            av_port=args.av_port,
            speed=args.speed,
            duration=args.duration,
            max_trades=args.max_trades,
        )
    if args.verb == "collect" and args.source == "finnhub":
        from flows.collect import run_collect_finnhub

        return run_collect_finnhub(
            settings,
            url=args.url,
            symbols=args.symbols,
            duration=args.duration,
            max_trades=args.max_trades,
        )
    if args.verb == "collect" and args.source == "alphavantage":
        from flows.collect import run_collect_alphavantage

        return run_collect_alphavantage(
            settings, url=args.url, symbols=args.symbols, interval=args.interval
        )
    if args.verb == "transform":
        import time

        from flows.alerts import alert_sender, send_dbt_failure_alert
        from flows.transform import TransformFailed, run_transform
        from flows.validate import raise_on_critical, run_quality_checkpoint

        build_started = time.time()
        try:
            run_transform(settings, target=args.target, full_refresh=args.full_refresh)
        except TransformFailed as exc:
            send_dbt_failure_alert(alert_sender(settings), exc)
            raise
        if args.target == "spark":
            print("transform: the checkpoint runs on local or databricks, not on a Spark session")
            return 0
        raise_on_critical(run_quality_checkpoint(settings, target=args.target,
                                                 settled_before=build_started))
        return 0
    if args.verb in ("train", "score"):
        from flows import training
        from flows.validate import apply_quality_gate

        stage = {"train": "training", "score": "scoring"}[args.verb]
        apply_quality_gate(settings, stage=stage, skip=args.skip_quality_gate)
        if args.verb == "train":
            training.run_train(settings)
        else:
            training.run_score(settings)
        from flows.pipeline import PUBLISH_SELECTOR
        from flows.transform import run_transform

        run_transform(settings, select=PUBLISH_SELECTOR)
        return 0
    if args.verb == "rollback":
        from flows import training

        training.run_rollback(settings)
        return 0
    if args.verb == "cycle":
        from flows.pipeline import cycle_flow

        cycle_flow(collect_seconds=args.collect_seconds, url=args.url,
                   skip_quality_gate=args.skip_quality_gate, settings=settings)
        return 0
    if args.verb == "drift":
        from flows.drift import run_drift

        run_drift(
            settings, current_hours=args.current_hours, reference_hours=args.reference_hours
        )
        return 0
    if args.verb == "validate":
        from flows.validate import raise_on_critical, run_validate

        raise_on_critical(run_validate(settings, target=args.target))
        return 0
    if args.verb == "audit":
        from flows.audit import run_audit_repair, run_audit_verify

        if args.audit_verb == "verify":
            return run_audit_verify(settings)
        return run_audit_repair(settings, reason=args.reason, operator=args.operator)
    if args.verb == "model":
        from flows.training import run_trust

        run_trust(settings, args.version, reason=args.reason)
        return 0
    if args.verb == "report":
        from flows.report import run_report

        run_report(settings)
        return 0
    if args.verb == "serve":
        from flows.serve import run_serve

        return run_serve()
    if args.verb == "ui":
        from flows.ui import run_ui

        return run_ui(
            settings,
            prefect_port=args.prefect_port,
            mlflow_port=args.mlflow_port,
            docs_port=args.docs_port,
            site_port=args.site_port,
        )
    if args.verb == "demo":
        from flows.demo import run_demo

        return run_demo(settings, seed=args.seed, minutes=args.minutes)
    raise AssertionError(f"unhandled verb {args.verb}")  # argparse only lets known verbs through


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tradewatch` console script."""
    args = build_parser().parse_args(argv)
    if not sys.stdout.isatty():
        # Piped or logged output: wide enough for the leaderboard and drift tables.
        os.environ.setdefault("COLUMNS", "160")
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("tradewatch: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure: one line naming its type, no traceback
        print(f"tradewatch: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
