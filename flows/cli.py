"""The `tradewatch` command line: each verb a thin call into `flows`.

Every verb is declared once, where it is handled: `@verb(name, help, *arguments)` on the
function that runs it. The parser (and the generated CLI reference) and the dispatch are
both derived from those declarations. A name with a space is a sub-verb of a group
(`collect finnhub`, `audit verify`); a group's help is in GROUPS.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ingest.symbols import InvalidSymbol, parse_symbol_list

#: Verbs that never reach the engine's warehouse or MLflow (local files, local servers).
OFFLINE_VERBS = frozenset({"simulate", "sql", "mf", "audit verify", "audit repair", "serve",
                           "ui"})
#: `tradewatch sql --format` choices (flows/analysts.py maps them to the DuckDB CLI's modes).
OUTPUT_FORMATS = ("csv", "json", "line", "markdown", "table")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other failure
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


@dataclass(frozen=True)
class Argument:
    """One option or positional argument of a verb, as `add_argument` takes it."""

    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Argument:
    """An argument of a verb: `arg("--seed", type=int, help="...")`."""
    return Argument(flags, options)


@dataclass(frozen=True)
class Verb:
    """A verb: its name (a space separates a group's sub-verb), help, arguments, handler."""

    name: str
    help: str
    arguments: tuple[Argument, ...]
    handler: Callable[[Any, argparse.Namespace], int | None]
    parser_options: dict[str, Any] = field(default_factory=dict)


#: Every verb, in the order `tradewatch --help` lists them.
VERBS: list[Verb] = []
#: The help of each group of sub-verbs.
GROUPS = {
    "collect": "run a collector",
    "audit": "check or repair the audit log's record chain",
    "model": "registered model versions",
    "review": "analysts' review of the champion's flags: queue, context, confirm or dismiss",
}


def verb(name: str, help: str, *arguments: Argument, **parser_options: Any):
    """Declare the decorated function as the handler of `tradewatch NAME`."""
    def register(handler: Callable[[Any, argparse.Namespace], int | None]):
        VERBS.append(Verb(name, help, arguments, handler, parser_options))
        return handler

    return register


_SKIP_HELP = ("train/score without the data-quality gate (an explicit override, written to the "
              "audit log)")
_SKIP_QUALITY_GATE = arg("--skip-quality-gate", action="store_true", help=_SKIP_HELP)
_SYMBOLS = arg("--symbols", type=_symbols, help="comma-separated, e.g. AAPL,MSFT")
_MAX_TRADES = arg("--max-trades", type=_positive(int), help="stop after this many trades")
_SEED = arg("--seed", type=int, help="seed of the market (default: settings)")


@verb("simulate", "serve the simulated market on 127.0.0.1",
      _SEED,
      arg("--port", type=int, default=8765, help="Finnhub WebSocket port (0: any)"),
      arg("--av-port", type=int, default=8766, help="Alpha Vantage HTTP port"),
      arg("--speed", type=_speed, help="0 = as fast as the client reads"),
      arg("--duration", type=_positive(float), help="simulated seconds to serve"),
      _MAX_TRADES)
def _simulate(settings, args):
    from flows.simulate import run_simulate

    return run_simulate(settings, seed=args.seed, port=args.port, av_port=args.av_port,
                        speed=args.speed, duration=args.duration, max_trades=args.max_trades)


@verb("collect finnhub", "Finnhub WebSocket trades",
      arg("--url", help="WebSocket URL (the simulator's: no API key needed)"),
      _SYMBOLS,
      arg("--duration", type=_positive(float), help="seconds to collect"),
      _MAX_TRADES)
def _collect_finnhub(settings, args):
    from flows.collect import run_collect_finnhub

    return run_collect_finnhub(settings, url=args.url, symbols=args.symbols,
                               duration=args.duration, max_trades=args.max_trades)


@verb("collect alphavantage", "Alpha Vantage bars",
      arg("--url", help="base URL (the simulator's: no API key needed)"),
      _SYMBOLS,
      arg("--interval", choices=["1min", "5min", "15min", "30min", "60min", "daily"],
          help="bar interval (default: settings)"))
def _collect_alphavantage(settings, args):
    from flows.collect import run_collect_alphavantage

    return run_collect_alphavantage(settings, url=args.url, symbols=args.symbols,
                                    interval=args.interval)


def _publish(settings) -> None:
    """Publish the analysts' database after a local build; a failure alerts and goes on."""
    from flows.analysts import publish_or_alert

    publish_or_alert(settings, lambda line: print(f"tradewatch: {line}", file=sys.stderr))


@verb("transform",
      "dbt build, then the data-quality checkpoint (alerts; exit 1 on a critical failure)",
      arg("--target", choices=["local", "databricks", "spark"],
          help="dbt target (default: settings)"),
      arg("--full-refresh", action="store_true", help="rebuild incremental models from scratch"))
def _transform(settings, args):
    import time

    from flows import engine
    from flows.alerts import alert_sender, send_dbt_failure_alert
    from flows.transform import TransformFailed, run_transform
    from flows.validate import raise_on_critical, run_quality_checkpoint

    target = args.target or settings.dbt.target
    build_started = time.time()
    try:
        run_transform(settings, target=target, full_refresh=args.full_refresh)
    except TransformFailed as exc:
        send_dbt_failure_alert(alert_sender(settings), exc)
        raise
    if engine.publishes_analysts_copy(settings, target):
        _publish(settings)
    raise_on_critical(run_quality_checkpoint(settings, target=target,
                                             settled_before=build_started))
    return 0


@verb("validate", "the data-quality checkpoint; writes Data Docs",
      arg("--target", choices=["local", "databricks", "spark"],
          help="warehouse to validate (default: settings)"))
def _validate(settings, args):
    from flows.validate import raise_on_critical, run_validate

    raise_on_critical(run_validate(settings, target=args.target))


def _train_or_score(settings, args, stage: str) -> None:
    from flows import engine, training
    from flows.pipeline import PUBLISH_SELECTOR
    from flows.transform import run_transform
    from flows.validate import apply_quality_gate

    apply_quality_gate(settings, stage=stage, skip=args.skip_quality_gate)
    if stage == "training":
        training.run_train(settings)
    else:
        training.run_score(settings)
    run_transform(settings, select=PUBLISH_SELECTOR)
    if engine.publishes_analysts_copy(settings):
        _publish(settings)


@verb("train", "quality gate → tournament → gate → promote → score", _SKIP_QUALITY_GATE)
def _train(settings, args):
    _train_or_score(settings, args, "training")


@verb("score", "quality gate → champion scores for every trade it has not scored → publish "
      "gold_anomaly_scores", _SKIP_QUALITY_GATE)
def _score(settings, args):
    _train_or_score(settings, args, "scoring")


@verb("cycle", "one scoring cycle: collect → dbt build → quality → score → publish → report "
      "(the scoring-cycle deployment runs it every 5 minutes)",
      arg("--collect-seconds", type=float,
          help="collect this long first (default: cycle.collect_seconds; 0: take what the "
          "running collector landed)"),
      arg("--url", help="Finnhub WebSocket URL to collect from (the simulator's)"),
      _SKIP_QUALITY_GATE)
def _cycle(settings, args):
    from flows.pipeline import cycle_flow

    cycle_flow(collect_seconds=args.collect_seconds, url=args.url,
               skip_quality_gate=args.skip_quality_gate, settings=settings)


@verb("rollback", "champion back to the previous version (the next cycle re-scores what the "
      "demoted version scored)")
def _rollback(settings, args):
    from flows import training

    training.run_rollback(settings)


@verb("drift", "drift report and the retraining decision",
      arg("--current-hours", type=_positive(float), help="newest window, hours"),
      arg("--reference-hours", type=_positive(float), help="window before, hours"))
def _drift(settings, args):
    from flows.drift import run_drift

    run_drift(settings, current_hours=args.current_hours, reference_hours=args.reference_hours)


@verb("audit verify", "check the chain; exit 1 while it is damaged")
def _audit_verify(settings, args):
    from flows.audit import run_audit_verify

    return run_audit_verify(settings)


@verb("audit repair", "acknowledge the damage on record (retraining waits a day after)",
      arg("--reason", required=True, help="what happened and who checked it"),
      arg("--operator", help="who repairs (default: the login name)"))
def _audit_repair(settings, args):
    from flows.audit import run_audit_repair

    return run_audit_repair(settings, reason=args.reason, operator=args.operator)


@verb("model trust", "record a version's content hash after checking it (audited)",
      arg("version", help="registered version number"),
      arg("--reason", required=True, help="what was checked, and by whom"))
def _model_trust(settings, args):
    from flows.training import run_trust

    run_trust(settings, args.version, reason=args.reason)


_REVIEWER = arg("--reviewer", help="who decides (default: $TRADEWATCH_REVIEWER, else the login "
                "name)")
_REASON = arg("--reason", required=True, help="why, in a sentence (written to the label store "
              "and the audit log)")
_TRADE_IDS = arg("trade_ids", nargs="+", metavar="ID",
                 help="trade id(s) of flagged trades, e.g. a whole cluster")


@verb("review list", "the champion's unreviewed flags, highest score first, with their clusters",
      arg("--limit", type=_positive(int), default=50, help="most flags to list (default 50)"),
      arg("--symbol", help="only this symbol's flags"))
def _review_list(settings, args):
    from flows.review import run_review_list

    return run_review_list(settings, limit=args.limit, symbol=args.symbol)


@verb("review show", "one flag in context: what drove the score, the trades and minute bars "
      "around it, its cluster",
      arg("trade_id", metavar="ID", help="trade id of a flagged trade"))
def _review_show(settings, args):
    from flows.review import run_review_show

    return run_review_show(settings, args.trade_id)


@verb("review confirm", "confirm flags as anomalies of a kind (label store + audit log)",
      _TRADE_IDS,
      arg("--kind", required=True,
          help="price_spike, volume_burst, pump_and_dump, wash_cluster, intensity_burst or "
          "other"),
      _REASON, _REVIEWER)
def _review_confirm(settings, args):
    from flows.review import run_review_decide

    return run_review_decide(settings, args.trade_ids, confirm=True, kind=args.kind,
                             reason=args.reason, reviewer=args.reviewer)


@verb("review dismiss", "dismiss flags as normal trades (label store + audit log)",
      _TRADE_IDS, _REASON, _REVIEWER)
def _review_dismiss(settings, args):
    from flows.review import run_review_decide

    return run_review_decide(settings, args.trade_ids, confirm=False, kind=None,
                             reason=args.reason, reviewer=args.reviewer)


@verb("sql", "an SQL shell (the DuckDB CLI) on the analysts' database, read-only; never "
      "blocks the pipeline",
      arg("-c", "--command", metavar="QUERY",
          help="run one query, print its result and exit (for scripts)"),
      arg("--format", choices=sorted(OUTPUT_FORMATS), default="table",
          help="output of -c: table (default), csv, json, markdown or line"))
def _sql(settings, args):
    from flows.analysts import run_sql

    return run_sql(settings, query=args.command, output=args.format)


@verb("mf", "MetricFlow (`mf`) on the analysts' database: the metrics of the semantic layer, "
      "e.g. `tradewatch mf query --saved-query daily_surveillance`",
      arg("mf_args", nargs=argparse.REMAINDER,
          help="arguments of `mf` (query, list metrics, validate-configs, ...)"),
      prefix_chars="\0", add_help=False)  # every argument, -h included, is mf's
def _mf(settings, args):
    from flows.metrics import run_mf

    return run_mf(settings, args.mf_args)


@verb("report", "the monitoring report (self-contained HTML)")
def _report(settings, args):
    from flows.report import run_report

    run_report(settings)


@verb("serve", "serve every Prefect deployment from one process")
def _serve(settings, args):
    from flows.serve import run_serve

    return run_serve()


@verb("ui", "Prefect UI, MLflow UI, dbt docs, the review page and the documentation site on "
      "127.0.0.1",
      arg("--prefect-port", type=int, default=4200, help="Prefect UI port"),
      arg("--mlflow-port", type=int, default=5000, help="MLflow UI port"),
      arg("--docs-port", type=int, default=8080, help="dbt docs port"),
      arg("--site-port", type=int, default=8000, help="documentation site port"),
      arg("--review-port", type=int, default=8090,
          help="review page port (the queue of flags to confirm or dismiss)"))
def _ui(settings, args):
    from flows.ui import run_ui

    return run_ui(settings, prefect_port=args.prefect_port, mlflow_port=args.mlflow_port,
                  docs_port=args.docs_port, site_port=args.site_port,
                  review_port=args.review_port)


@verb("demo", "the whole pipeline on DuckDB with the simulated market",
      _SEED,
      arg("--minutes", type=_positive(float), help="simulated trading minutes"))
def _demo(settings, args):
    from flows.demo import run_demo

    return run_demo(settings, seed=args.seed, minutes=args.minutes)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb, derived from VERBS."""
    parser = _Parser(prog="tradewatch", description="Trade-anomaly platform.")
    parser.add_argument("--config", type=Path, help="project_config.yml to use")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    groups: dict[str, Any] = {}
    for declared in VERBS:
        group, _, sub = declared.name.partition(" ")
        if sub:
            if group not in groups:
                holder = verbs.add_parser(group, help=GROUPS[group])
                groups[group] = holder.add_subparsers(dest=f"{group}_verb", required=True,
                                                      parser_class=_Parser)
            command = groups[group].add_parser(sub, help=declared.help, **declared.parser_options)
        else:
            command = verbs.add_parser(group, help=declared.help, **declared.parser_options)
        for argument in declared.arguments:
            command.add_argument(*argument.flags, **argument.options)
        command.set_defaults(handler=declared.handler, verb_name=declared.name)
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
    if args.verb_name not in OFFLINE_VERBS:
        from flows.engine import check_workspace

        check_workspace(settings)  # on Databricks: fail in seconds when it cannot be reached
    return args.handler(settings, args) or 0


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
