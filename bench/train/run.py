"""Benchmark: training time and scoring throughput of the four models, configured vs defaults.

Synthetic labelled feature rows (ml.synthetic: the gold_trade_features shape with planted
anomaly events, 1 % anomalous by default), split by time with the project's purge gap. Each
model is trained twice through the same ml.models interface — once with the hyperparameters of
project_config.yml `training.models`, once with the library's default settings (the baseline)
— and both score the test window. Figures: training seconds, scoring throughput in rows/s
(best of --repeats full-window scorings), test PR-AUC for context, and configured/default
ratios. Run: .venv/bin/python bench/train/run.py [--rows 200000] [--models lightgbm,xgboost]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench_env import model_names, prepare

prepare()

from flows.config import load_settings  # noqa: E402
from ml.datasets import LABEL_COLUMN, split_by_time, training_frame_from  # noqa: E402
from ml.metrics import pr_auc  # noqa: E402
from ml.models import MODEL_TYPES, build_model  # noqa: E402
from ml.synthetic import synthetic_market  # noqa: E402


def measure(name: str, params: dict, split, repeats: int, jobs: int | None) -> dict[str, float]:
    """Fit once, then score the test window `repeats` times; keep the fastest scoring."""
    model = build_model(name, {**params, **({"n_jobs": jobs} if jobs else {})})
    began = time.perf_counter()
    model.fit(split.train, split.validation)
    training_seconds = time.perf_counter() - began
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        scores = model.score(split.test)
        best = min(best, time.perf_counter() - began)
    return {
        "train_s": training_seconds,
        "rows_per_s": len(split.test) / best,
        "pr_auc": pr_auc(split.test[LABEL_COLUMN], scores),
        "iterations": model.fit_report.best_iteration or 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="synthetic trades (default 200k)")
    parser.add_argument("--anomaly-rate", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3, help="scorings per model (best kept)")
    parser.add_argument("--models", default=",".join(MODEL_TYPES), help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="threads for every model, both settings (default: each library's own default)",
    )
    args = parser.parse_args()

    settings = load_settings()
    configured = settings.training.models
    names = model_names(parser, args.models, MODEL_TYPES)

    began = time.perf_counter()
    market = synthetic_market(
        args.rows, anomaly_rate=args.anomaly_rate, seed=args.seed, seconds_between_trades=2.0
    )
    split = split_by_time(
        training_frame_from(market.frame),
        validation_share=settings.training.validation_share,
        test_share=settings.training.test_share,
        purge_seconds=settings.training.purge_seconds,
    )
    print(
        f"data: {args.rows} rows in {time.perf_counter() - began:.1f} s; train "
        f"{len(split.train)}, validation {len(split.validation)}, test {len(split.test)} "
        f"({int(split.test[LABEL_COLUMN].sum())} anomalous), purged "
        f"{sum(split.purged_rows.values())}; {os.cpu_count()} cores"
    )
    header = f"{'model':<17}{'setting':<11}{'train s':>9}{'iters':>7}{'rows/s':>12}{'PR-AUC':>8}"
    print(header)
    print("-" * len(header))
    ratios = []
    for name in names:
        tuned = measure(name, dict(configured.get(name, {})), split, args.repeats, args.jobs)
        default = measure(name, {}, split, args.repeats, args.jobs)
        for label, result in (("configured", tuned), ("default", default)):
            print(
                f"{name:<17}{label:<11}{result['train_s']:>9.2f}{int(result['iterations']):>7}"
                f"{result['rows_per_s']:>12,.0f}{result['pr_auc']:>8.3f}"
            )
        train_ratio = tuned["train_s"] / default["train_s"]
        throughput_ratio = tuned["rows_per_s"] / default["rows_per_s"]
        ratios.append((name, train_ratio, throughput_ratio, tuned["pr_auc"] - default["pr_auc"]))
    print()
    print("configured / default (training time: < 1 is faster; throughput: > 1 is faster)")
    for name, train_ratio, throughput_ratio, pr_gain in ratios:
        print(
            f"{name:<17}training time x{train_ratio:.2f}   "
            f"scoring throughput x{throughput_ratio:.2f}   PR-AUC {pr_gain:+.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
