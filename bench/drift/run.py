"""Benchmark: the vectorised drift check against a straightforward per-feature numpy/scipy one.

17 features shaped like gold_trade_features (14 numeric, 3 categorical), 1M reference rows
against 1M current rows in which a few features drifted. Both implementations get the same
pandas frames and compute the same statistics (the run checks they agree); the figures are the
best of --repeats wall-clock times of each, with the process CPU time of that run beside it
(more CPU than wall means threads ran in parallel). Run:
.venv/bin/python bench/drift/run.py [--rows N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.schema import (  # noqa: E402
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    SESSION_TYPES,
    TRADE_TYPES,
)
from ml.drift import DriftOptions, compute_drift  # noqa: E402
from ml.drift_statistics import PSI_EPSILON  # noqa: E402

#: The model's numeric inputs this benchmark simulates: all but the three newest and two clock
#: features (the figures stay comparable with earlier runs).
NUMERIC = tuple(
    f for f in NUMERIC_FEATURES
    if f not in ("volume_to_median_100", "trade_rate_ratio_10s", "same_print_count_2s",
                 "minute_of_hour", "day_of_week")
)
CATEGORICAL = (*CATEGORICAL_FEATURES, "symbol")
SYMBOLS = np.array(["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AMD"], dtype=object)


def market(rows: int, seed: int, *, regime_change: bool) -> pd.DataFrame:
    """Feature rows with realistic shapes: ties, heavy tails, integer counts, strings."""
    rng = np.random.default_rng(seed)
    vol = 3.0 if regime_change else 1.0
    change = rng.standard_t(3, rows) * 0.05 * vol
    change[rng.random(rows) < 0.4] = 0.0  # unchanged prices: a point mass at 0
    frame = {
        "price_change_pct": change,
        "log_return": change / 100,
        "volume_zscore": rng.standard_t(4, rows) * (1.5 if regime_change else 1.0),
        "price_zscore": rng.normal(0, 1, rows),
        "price_volatility_1h": rng.lognormal(-7, 0.5, rows) * vol,
        "trade_intensity_1m": rng.poisson(120, rows).astype(float),
        "vwap_deviation_pct": rng.normal(0, 0.3, rows),
        "rsi_14": np.clip(rng.normal(50, 12, rows), 0, 100),
        "macd_line": rng.normal(0, 0.2, rows),
        "macd_signal": rng.normal(0, 0.15, rows),
        "macd_hist": rng.normal(0, 0.05, rows),
        "bollinger_pct_b": rng.normal(0.5, 0.3, rows),
        "roll_spread_pct": np.where(rng.random(rows) < 0.3, 0.0, rng.exponential(0.02, rows)),
        "hour_of_day": rng.integers(9, 16, rows).astype(float),
    }
    frame["price_volatility_1h"][rng.random(rows) < 0.001] = np.nan  # first trades of a day
    sessions = np.array(SESSION_TYPES, dtype=object)  # pre_market, regular, after_hours, closed
    frame["session_type"] = sessions[rng.choice(4, rows, p=[0.05, 0.85, 0.08, 0.02])]
    types = np.array(TRADE_TYPES, dtype=object)  # block, standard, odd_lot
    frame["trade_type"] = types[rng.choice(3, rows, p=[0.01, 0.6, 0.39])]
    symbols = np.append(SYMBOLS, "PLTR") if regime_change else SYMBOLS
    frame["symbol"] = symbols[rng.integers(0, len(symbols), rows)]
    return pd.DataFrame(frame)


def straightforward(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    bins: int,
    numeric: tuple[str, ...] = NUMERIC,
    categorical: tuple[str, ...] = CATEGORICAL,
) -> dict[str, float]:
    """The per-feature way: np.quantile, np.histogram, np.unique, scipy; a feature at a time."""
    quantiles = np.arange(1, bins) / bins
    out = {}
    for feature in numeric:
        ref = reference[feature].to_numpy()
        cur = current[feature].to_numpy()
        ref_values, cur_values = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
        cuts = np.unique(np.quantile(ref_values, quantiles))
        # [cut, nextafter(cut)) holds exactly the value `cut`: the point bins of PSI.
        edges = np.concatenate(
            [[-np.inf], np.ravel(np.column_stack([cuts, np.nextafter(cuts, np.inf)])), [np.inf]]
        )
        ref_counts = np.append(np.histogram(ref_values, edges)[0], len(ref) - len(ref_values))
        cur_counts = np.append(np.histogram(cur_values, edges)[0], len(cur) - len(cur_values))
        p = np.maximum(ref_counts / len(ref), PSI_EPSILON)
        q = np.maximum(cur_counts / len(cur), PSI_EPSILON)
        out[feature] = float(np.sum((q - p) * np.log(q / p)))
    for feature in categorical:
        ref_cats, ref_counts = np.unique(reference[feature].to_numpy(), return_counts=True)
        cur_cats, cur_counts = np.unique(current[feature].to_numpy(), return_counts=True)
        cats = np.union1d(ref_cats, cur_cats)
        p = np.zeros(len(cats))
        q = np.zeros(len(cats))
        p[np.searchsorted(cats, ref_cats)] = ref_counts
        q[np.searchsorted(cats, cur_cats)] = cur_counts
        out[feature] = float(jensenshannon(p, q, base=2))
    return out


def best_of(repeats: int, run):
    """(wall seconds, CPU seconds) of the fastest of `repeats` runs, and the last result."""
    best, result = (float("inf"), float("inf")), None
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        result = run()
        best = min(best, (time.perf_counter() - started, time.process_time() - cpu))
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per window (default 1M)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, best is kept")
    parser.add_argument("--bins", type=int, default=10)
    args = parser.parse_args()
    if args.rows < 100:
        parser.error("--rows must be at least 100")

    reference = market(args.rows, seed=1, regime_change=False)
    current = market(args.rows, seed=2, regime_change=True)
    now = datetime.now(UTC)
    reference_window = (now - timedelta(days=8), now - timedelta(days=1))
    current_window = (now - timedelta(days=1), now)

    def vectorised(workers: int, numeric=NUMERIC, categorical=CATEGORICAL):
        return lambda: compute_drift(
            reference,
            current,
            numeric_features=numeric,
            categorical_features=categorical,
            reference_window=reference_window,
            current_window=current_window,
            options=DriftOptions(bins=args.bins, workers=workers),
        )

    base_s, base = best_of(args.repeats, lambda: straightforward(reference, current, args.bins))
    one_s, report = best_of(args.repeats, vectorised(1))
    workers = min(2, os.cpu_count() or 1)
    many_s, _ = best_of(args.repeats, vectorised(workers))
    mine = {f.feature: f.statistic for f in report.features}
    disagreement = max(abs(mine[f] - base[f]) for f in base)
    if disagreement > 1e-9:
        print(f"FAIL: implementations disagree by {disagreement:.3g}", file=sys.stderr)
        return 1

    # Where the time goes, per part (1 thread).
    parts = {}
    for label, numeric, categorical in (("numeric", NUMERIC, ()), ("categorical", (), CATEGORICAL)):
        base_part, _ = best_of(
            args.repeats,
            lambda n=numeric, c=categorical: straightforward(reference, current, args.bins, n, c),
        )
        mine_part, _ = best_of(args.repeats, vectorised(1, numeric, categorical))
        parts[label] = (base_part, mine_part)

    print(
        f"drift check: {len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical features, "
        f"{args.rows:,} reference vs {args.rows:,} current rows, best of {args.repeats}"
    )
    print(f"  drifted: {', '.join(f.feature for f in report.drifted_features)}")
    print(f"  statistics agree to {disagreement:.1e}")
    print(f"  baseline (per-feature numpy/scipy): {base_s[0]:8.3f} s  cpu {base_s[1]:7.3f} s")
    for threads, (seconds, cpu) in (("1 thread:", one_s), (f"{workers} threads:", many_s)):
        print(
            f"  ml.drift.compute_drift, {threads:<11} {seconds:8.3f} s  cpu {cpu:7.3f} s"
            f"   {base_s[0] / seconds:5.1f}x faster"
        )
    for label, (base_part, mine_part) in parts.items():
        print(
            f"    {label:<11} part: baseline {base_part[0]:6.3f} s (cpu {base_part[1]:6.3f} s), "
            f"vectorised {mine_part[0]:6.3f} s (cpu {mine_part[1]:6.3f} s)"
            f"   {base_part[0] / mine_part[0]:5.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
