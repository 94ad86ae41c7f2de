"""Benchmark: freshness of the scoring cycle, the simulated market in real time.

    .venv/bin/python bench/freshness/run.py                    # 3 cycles, 5 minutes apart
    .venv/bin/python bench/freshness/run.py --interval 60      # quicker, a 60 s cycle

What it does, in a fresh data home, like `tradewatch serve` would:

1. bootstrap: a past slice of the market (speed 0) is landed, built and a small champion
   trained (its accuracy does not matter here; the default models would only make the
   bootstrap longer);
2. the market goes on in real time (`--speed 1`, the configured symbols and trade rate), a
   `tradewatch collect finnhub` process lands it continuously (the continuous-ingestion
   deployment), and the scoring cycle (`cycle` flow, under Prefect) starts every `--interval`
   seconds, as the scoring-cycle deployment does.

It prints, per cycle, each step's wall time; then the lag from a trade's landing (its file
renamed into landing/) to its score being queryable in gold_anomaly_scores (the end of the
cycle's publish step), p50/p95/max over every trade scored in the measured cycles, and the
ratio of p95 to the budget of two cycle intervals (below 1.0 holds). CPU time of this process
and its children is printed beside wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
for variable, value in {
    "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}.items():
    os.environ.setdefault(variable, value)

import orjson  # noqa: E402

SMALL_MODELS = {
    "lightgbm": {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 15,
                 "early_stopping_rounds": 10},
}


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _land_past(settings, start: datetime, minutes: float) -> int:
    from ingest.finnhub import FinnhubCollector
    from ingest.simulator import Simulator, SimulatorConfig, collect_market

    config = SimulatorConfig(
        seed=settings.simulator.seed, symbols=settings.symbols, start=start,
        duration_seconds=minutes * 60, trades_per_second=settings.simulator.trades_per_second,
        anomaly_rate=settings.simulator.anomaly_rate,
        ground_truth_dir=settings.paths.ground_truth,
    )
    with Simulator(config).start() as market:
        collector = FinnhubCollector(url=market.ws_url, symbols=settings.symbols,
                                     landing_dir=settings.paths.landing, flush_seconds=0.5)
        return collect_market(market, collector)


def _landing_times(landing: Path) -> dict[str, float]:
    """trade_id → when its file was landed (renamed into place)."""
    from ingest.landing import iter_landed_files

    landed: dict[str, float] = {}
    for path in iter_landed_files(landing / "trades"):
        mtime = path.stat().st_mtime
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    landed.setdefault(orjson.loads(line)["trade_id"], mtime)
    return landed


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3, help="measured cycles (default 3)")
    parser.add_argument("--interval", type=float, help="seconds between cycle starts "
                        "(default: cycle.interval_seconds, 300)")
    parser.add_argument("--bootstrap-minutes", type=float, default=150.0,
                        help="market minutes landed before, to train the champion on")
    args = parser.parse_args()

    from core.warehouse import DuckDBWarehouse
    from flows.config import load_settings
    from flows.pipeline import cycle_flow, training_flow, transform_flow

    home = Path(tempfile.mkdtemp(prefix="tradewatch-freshness-"))
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    interval = args.interval or settings.cycle.interval_seconds
    # The champion only has to exist: a small model, and a gate that does not judge quality.
    settings = settings.model_copy(update={
        "training": settings.training.model_copy(
            update={"models": SMALL_MODELS, "purge_seconds": 300}),
        "gate": settings.gate.model_copy(update={"min_pr_auc": 0.0, "max_latency_p99_ms": 1e4}),
    })
    symbols = settings.symbols
    rate = settings.simulator.trades_per_second
    print(f"data home {home}; {len(symbols)} symbols at {rate:g} trades/s each (regular "
          f"session); a cycle every {interval:g} s; {args.cycles} measured cycles", flush=True)

    # 1. bootstrap: a champion on a past slice of the market.
    start = datetime(2024, 3, 12, 9, 30, tzinfo=UTC) + timedelta(hours=4)  # 09:30 EDT
    started = time.monotonic()
    landed = _land_past(settings, start, args.bootstrap_minutes)
    live_start = start + timedelta(minutes=args.bootstrap_minutes)
    quality = transform_flow(reference_time=live_start, settings=settings)
    training_flow(reference_time=live_start, settings=settings, quality=quality)
    from flows.pipeline import PUBLISH_SELECTOR, build_warehouse

    build_warehouse(settings, select=PUBLISH_SELECTOR)
    print(f"bootstrap: {landed:,} trades landed, built, a champion trained and its scores "
          f"published in {time.monotonic() - started:.0f} s", flush=True)
    known = set(DuckDBWarehouse(settings.paths.warehouse).query(
        "select trade_id from gold_anomaly_scores")["trade_id"])

    # 2. the market in real time, one collector process, a cycle every `interval` seconds.
    from ingest.simulator import Simulator, SimulatorConfig

    duration = interval * (args.cycles + 1) + 120
    config = SimulatorConfig(
        seed=settings.simulator.seed + 1, symbols=symbols, start=live_start, speed=1.0,
        duration_seconds=duration, trades_per_second=rate,
        anomaly_rate=settings.simulator.anomaly_rate,
    )
    queryable: dict[str, float] = {}
    steps: list[dict[str, float]] = []
    cpu_before, wall_before = _cpu_seconds(), time.monotonic()
    live_since = time.time()  # only trades landed from here on are measured
    env = {**os.environ, "TRADEWATCH_HOME": str(home)}
    with Simulator(config).start() as market:
        collector = subprocess.Popen(
            [str(Path(sys.executable).parent / "tradewatch"), "collect", "finnhub",
             "--url", market.ws_url, "--symbols", ",".join(symbols)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        live_t0 = time.monotonic()
        try:
            for number in range(1, args.cycles + 1):
                due = live_t0 + number * interval
                time.sleep(max(0.0, due - time.monotonic()))
                market_now = live_start + timedelta(seconds=time.monotonic() - live_t0)
                result = cycle_flow(reference_time=market_now, report=True, settings=settings)
                published = time.time()
                scored = set(DuckDBWarehouse(settings.paths.warehouse).query(
                    "select trade_id from gold_anomaly_scores")["trade_id"])
                for trade_id in scored - known:
                    queryable[trade_id] = published
                known = scored
                steps.append(result.steps)
                timing = ", ".join(f"{name} {seconds:.1f} s"
                                   for name, seconds in result.steps.items())
                print(f"cycle {number}: {len(scored):,} trades scored in all; {timing} "
                      f"(total {sum(result.steps.values()):.1f} s)", flush=True)
        finally:
            collector.terminate()
            collector.wait(timeout=60)
    wall = time.monotonic() - wall_before
    cpu = _cpu_seconds() - cpu_before

    landed_at = _landing_times(settings.paths.landing)
    live = {t: landed for t, landed in landed_at.items() if landed >= live_since}
    lags = [queryable[t] - live[t] for t in queryable if t in live]
    waiting = len([t for t in live if t not in known])
    print()
    print("step durations over the cycles (s): " + "; ".join(
        f"{name} p50 {statistics.median(s[name] for s in steps if name in s):.1f} "
        f"max {max(s[name] for s in steps if name in s):.1f}"
        for name in steps[0]))
    totals = [sum(s.values()) for s in steps]
    print(f"cycle duration: p50 {statistics.median(totals):.1f} s, max {max(totals):.1f} s "
          f"({max(totals) / interval:.2f} of the interval)")
    if not lags:
        print("no trade was scored in the measured cycles")
        return 1
    p50, p95, worst = (_percentile(lags, 0.5), _percentile(lags, 0.95), max(lags))
    print(f"freshness, landing → queryable in gold_anomaly_scores, {len(lags):,} trades: "
          f"p50 {p50:.1f} s, p95 {p95:.1f} s, max {worst:.1f} s "
          f"({waiting:,} landed trades still waiting for the next cycle)")
    print(f"p95 against the budget of two cycle intervals ({2 * interval:g} s): "
          f"ratio {p95 / (2 * interval):.2f} ({'holds' if p95 < 2 * interval else 'MISSED'})")
    print(f"live phase: wall {wall:.0f} s, CPU {cpu:.0f} s (this process and its children)")
    return 0 if p95 < 2 * interval else 1


if __name__ == "__main__":
    sys.exit(main())
