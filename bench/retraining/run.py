"""Benchmark: do models trained on more days find events better? Growing histories, one window.

For each simulator seed, `--days` + 1 trading days of the simulated market (`--symbols`, the
configured trade and anomaly rates) are served on 127.0.0.1, landed by the real Finnhub
collector and built by dbt; the built warehouse is kept under `--home` and reused by later
runs. The last trading day is the final window. For k = 1 … `--days`, each model is trained on
the k trading days before it as `tradewatch train` trains (the configured hyperparameters and
threshold policy; the newest `validation_share` of the history for early stopping and the
threshold, after the purge gap) and scored on the final window.

Per seed, model and k it prints event-level figures (ml/events.py: alerts per symbol within the
configured gap, each event once) — average precision with its bootstrap interval, the paired
differences against the 1-day and the (k−1)-day model with their intervals (the same block
resamples for every k, as the gate draws them), event recall at the required alert
precision and at the model's own threshold, false alerts per day, median time to detect — and
trade-level PR-AUC with its interval, trade precision and recall; then what the validation
window held (events, anomalous trades, the largest event's share of them) and CPU seconds.
A closing table averages each k over the seeds and counts the seeds where the k-day model is
worse than any shorter history beyond the interval.

Run: .venv/bin/python bench/retraining/run.py [--seeds 42,7,11] [--days 4]
     [--symbols AAPL,TSLA,KO] [--models lightgbm] [--home /tmp/tradewatch-retraining]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from bench_env import model_names, prepare  # noqa: E402

prepare()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from flows.config import Settings, load_settings  # noqa: E402
from flows.demo import TRADING_DAY_MINUTES, window_end  # noqa: E402
from flows.transform import run_transform  # noqa: E402
from ingest.finnhub import FinnhubCollector  # noqa: E402
from ingest.simulator import Simulator, SimulatorConfig, collect_market  # noqa: E402
from ml.datasets import (  # noqa: E402
    LABEL_COLUMN,
    load_ground_truth_events,
    load_training_frame,
)
from ml.events import EventJudge, event_ids_of, events_from_answer_key  # noqa: E402
from ml.metrics import (  # noqa: E402
    block_resamples,
    bootstrap_draws,
    pr_auc,
    threshold_metrics,
)
from ml.models import MODEL_TYPES, ThresholdPolicy, build_model  # noqa: E402

NEW_YORK = "America/New_York"


def cpu() -> float:
    return time.process_time()


def build_market(settings: Settings, seed: int, days: int, symbols: tuple[str, ...]) -> None:
    """Serve `days` trading days, land them with the real collector and dbt-build them, once."""
    if settings.paths.warehouse.exists():
        print(f"seed {seed}: reusing the warehouse in {settings.paths.home}")
        return
    began, began_cpu = time.perf_counter(), cpu()
    start = settings.simulator.start
    config = SimulatorConfig(
        seed=seed,
        symbols=symbols,
        start=start,
        trades_per_second=settings.simulator.trades_per_second,
        anomaly_rate=settings.simulator.anomaly_rate,
        duration_seconds=(window_end(start, days * TRADING_DAY_MINUTES) - start).total_seconds(),
        ground_truth_dir=settings.paths.simulator / "ground_truth",
    )
    with Simulator(config).start() as market:
        collector = FinnhubCollector(
            url=market.ws_url, symbols=symbols, landing_dir=settings.paths.landing,
            flush_trades=50_000, flush_seconds=1.0,
        )
        sent = collect_market(market, collector)
    if collector.stats.landed != sent:
        raise SystemExit(f"seed {seed}: the collector landed {collector.stats.landed} of {sent}")
    landed = time.perf_counter() - began
    run_transform(settings.model_copy(update={"symbols": symbols}))
    print(
        f"seed {seed}: {sent:,} trades over {days} trading days landed in {landed:.0f} s and "
        f"built in {time.perf_counter() - began - landed:.0f} s wall ({cpu() - began_cpu:.0f} "
        "CPU s in this process; dbt's DuckDB threads included)"
    )


def trading_day(frame: pd.DataFrame) -> np.ndarray:
    """The New York date of each trade."""
    return (
        pd.to_datetime(frame["trade_ts_ms"], unit="ms", utc=True).dt.tz_convert(NEW_YORK).dt.date
    ).to_numpy()


def history_split(
    history: pd.DataFrame, validation_share: float, purge_seconds: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation as ml.datasets.split_by_time cuts them: the newest share of the
    history's trades for validation, the purge gap dropped from the end of train."""
    ts = history["trade_ts_ms"].to_numpy()
    validation_start = ts[int(len(ts) * (1 - validation_share))]
    train = history.loc[ts <= validation_start - purge_seconds * 1000]
    validation = history.loc[ts >= validation_start]
    return train.reset_index(drop=True), validation.reset_index(drop=True)


@dataclass
class Row:
    seed: int
    model: str
    days: int
    train_rows: int
    validation_events: int
    validation_anomalies: int
    largest_event_share: float
    best_iteration: int | None
    threshold: float
    figures: dict
    cpu_s: float


def interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def run_seed(
    seed: int, args, settings: Settings, names: list[str], symbols: tuple[str, ...]
) -> list[Row]:
    home = Path(args.home) / f"seed{seed}-{len(symbols)}symbols-{args.days + 1}days"
    seeded = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    build_market(seeded, seed, args.days + 1, symbols)
    data = load_training_frame(seeded.paths.warehouse)
    frame = data.frame
    days = trading_day(frame)
    calendar = sorted(set(days))
    if len(calendar) < args.days + 1:
        raise SystemExit(f"seed {seed}: {len(calendar)} trading days built, {args.days + 1} needed")
    final = frame.loc[days == calendar[-1]].reset_index(drop=True)
    answer_key = load_ground_truth_events(seeded.paths.simulator / "ground_truth")
    events = events_from_answer_key(answer_key)
    gate = settings.gate
    judge = EventJudge(
        final, events, gap_seconds=gate.alert_gap_seconds,
        block_minutes=gate.bootstrap.block_minutes,
    )
    weights = block_resamples(judge, gate.bootstrap.resamples, seed=gate.bootstrap.seed)
    required = settings.training.threshold.min_alert_precision
    policy = ThresholdPolicy(settings.training.threshold.rule, required)
    kinds = judge.events["kind"].value_counts().to_dict()
    print(
        f"seed {seed}: final window {calendar[-1]} — {len(final):,} trades, "
        f"{len(judge.events)} events ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})"
    )
    rows: list[Row] = []
    baseline: dict[str, dict] = {}
    for name in names:
        earlier: dict[int, np.ndarray] = {}  # k → event AP bootstrap draws
        for k in range(1, args.days + 1):
            began = cpu()
            chosen = set(calendar[-1 - k : -1])
            history = frame.loc[np.isin(days, list(chosen))].reset_index(drop=True)
            train, validation = history_split(
                history, settings.training.validation_share, settings.training.purge_seconds
            )
            model = build_model(
                name, settings.training.models.get(name, {}), features=data.features,
                random_seed=settings.training.random_seed, threshold_policy=policy,
            )
            report = model.fit(train, validation, events=events)
            scores = model.score(final)
            flags = scores >= model.threshold
            event_figures = judge.metrics(scores, flags, required_alert_precision=required)
            draws = {
                metric: bootstrap_draws(
                    metric, judge, final, scores, weights, required_alert_precision=required
                )
                for metric in ("event_average_precision", "pr_auc")
            }
            y = final[LABEL_COLUMN].to_numpy(dtype=bool)
            at = threshold_metrics(y, flags)
            ids = pd.Series(event_ids_of(validation, events))[validation[LABEL_COLUMN].to_numpy()]
            sizes = ids.value_counts()
            figures = {
                "event_ap": event_figures.average_precision,
                "event_ap_ci": interval(
                    draws["event_average_precision"], gate.bootstrap.confidence
                ),
                "recall_at_p": event_figures.recall_at_precision,
                "event_recall": event_figures.recall,
                "false_per_day": event_figures.false_alerts_per_day,
                "ttd": event_figures.median_time_to_detect_s,
                "pr_auc": pr_auc(y, scores),
                "pr_auc_ci": interval(draws["pr_auc"], gate.bootstrap.confidence),
                "precision": at.precision,
                "recall": at.recall,
                "draws": draws,
            }
            if k == 1:
                baseline[name] = figures
            else:
                before = baseline[name]["draws"]["event_average_precision"]
                gain = draws["event_average_precision"] - before
                figures["gain"] = figures["event_ap"] - baseline[name]["event_ap"]
                figures["gain_ci"] = interval(gain, gate.bootstrap.confidence)
                previous = [r for r in rows if r.model == name and r.days == k - 1][0]
                step = draws["event_average_precision"] - earlier[k - 1]
                figures["step"] = figures["event_ap"] - previous.figures["event_ap"]
                figures["step_ci"] = interval(step, gate.bootstrap.confidence)
            # Paired against every shorter history: is this one worse beyond the interval?
            figures["worse_than"] = [
                j for j, other in earlier.items()
                if interval(draws["event_average_precision"] - other,
                            gate.bootstrap.confidence)[1] < 0
            ]
            earlier[k] = draws["event_average_precision"]
            rows.append(
                Row(
                    seed, name, k, len(train), int(sizes.size), int(sizes.sum()),
                    float(sizes.iloc[0] / sizes.sum()) if sizes.size else 0.0,
                    report.best_iteration, float(model.threshold), figures, cpu() - began,
                )
            )
            print_row(rows[-1])
    return rows


HEADER = (
    f"{'seed':>4} {'model':<14}{'days':>4} {'train rows':>10} {'event AP [interval]':>21} "
    f"{'vs 1 day [interval]':>24} {'vs k-1 days [interval]':>24} {'R@P':>5} {'recall':>6} "
    f"{'false/d':>7} {'TTD s':>6} "
    f"{'PR-AUC [interval]':>20} {'prec':>5} {'rec':>5} | {'val ev':>6} {'val anom':>8} "
    f"{'top ev':>6} {'iters':>5} {'thresh':>6} {'CPU s':>6}"
)


def _f(value, digits=3, width=5):
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'–':>{width}}"


def print_row(row: Row) -> None:
    f = row.figures
    low, high = f["event_ap_ci"]
    gain = (
        f"{f['gain']:+.3f} [{f['gain_ci'][0]:+.3f},{f['gain_ci'][1]:+.3f}]"
        if "gain" in f else "–"
    )
    step = (
        f"{f['step']:+.3f} [{f['step_ci'][0]:+.3f},{f['step_ci'][1]:+.3f}]"
        if "step" in f else "–"
    )
    print(
        f"{row.seed:>4} {row.model:<14}{row.days:>4} {row.train_rows:>10,} "
        f"{f['event_ap']:.3f} [{low:.3f},{high:.3f}] {gain:>24} {step:>24} "
        f"{_f(f['recall_at_p'], 2)} "
        f"{_f(f['event_recall'], 2, 6)} {_f(f['false_per_day'], 0, 7)} {_f(f['ttd'], 1, 6)} "
        f"{f['pr_auc']:.3f} [{f['pr_auc_ci'][0]:.3f},{f['pr_auc_ci'][1]:.3f}] "
        f"{_f(f['precision'], 2)} {_f(f['recall'], 2)} | {row.validation_events:>6} "
        f"{row.validation_anomalies:>8} {row.largest_event_share:>6.0%} "
        f"{row.best_iteration if row.best_iteration else '–':>5} {row.threshold:>6.3f} "
        f"{row.cpu_s:>6.1f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,7,11", help="simulator seeds (default 42,7,11)")
    parser.add_argument("--days", type=int, default=4, help="longest history in trading days")
    parser.add_argument("--symbols", default="AAPL,TSLA,KO",
                        help="market symbols (default: three of the demo's, small to large lots)")
    parser.add_argument("--models", default="lightgbm", help="comma-separated subset")
    parser.add_argument("--home", default="/tmp/tradewatch-retraining",
                        help="where the built markets are kept between runs")
    args = parser.parse_args()
    names = model_names(parser, args.models, MODEL_TYPES)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    settings = load_settings()
    began, began_cpu = time.perf_counter(), cpu()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores; alert gap "
        f"{settings.gate.alert_gap_seconds:g} s, {settings.gate.bootstrap.resamples} bootstrap "
        f"resamples over {settings.gate.bootstrap.block_minutes:g}-minute blocks, "
        f"{settings.gate.bootstrap.confidence:.0%} intervals; threshold rule "
        f"{settings.training.threshold.rule} at alert precision "
        f"{settings.training.threshold.min_alert_precision:g}"
    )
    rows: list[Row] = []
    for seed in seeds:
        print(HEADER)
        rows += run_seed(seed, args, settings, names, symbols)
    print()
    print("mean over seeds; 'worse' counts the seeds where the k-day model is worse than a "
          "shorter history's on event AP beyond the 90 % paired interval")
    for name in names:
        for k in range(1, args.days + 1):
            mine = [r for r in rows if r.model == name and r.days == k]
            worse = sum(1 for r in mine if r.figures["worse_than"])
            print(
                f"{name:<14} {k} days: "
                f"event AP {np.mean([r.figures['event_ap'] for r in mine]):.3f}"
                f"  PR-AUC {np.mean([r.figures['pr_auc'] for r in mine]):.3f}"
                f"  event recall {np.mean([r.figures['event_recall'] for r in mine]):.3f}"
                f"  false alerts/day {np.mean([r.figures['false_per_day'] for r in mine]):.0f}"
                + (f"  worse than a shorter history: {worse} of {len(mine)} seeds"
                   if k > 1 else "")
            )
    print(f"total: {time.perf_counter() - began:.0f} s wall, {cpu() - began_cpu:.0f} CPU s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
