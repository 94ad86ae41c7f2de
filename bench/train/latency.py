"""Benchmark: per-row scoring latency of the four models through the registered pyfunc.

The gate rejects a challenger whose p99 per-row latency (ml.metrics.scoring_latency: batches
of 1, 100 and 1000 rows, per-row = batch time / rows) exceeds gate.max_latency_p99_ms, and the
one-row batches make that p99. Each model is trained on synthetic rows (ml.synthetic) with the
hyperparameters of project_config.yml `training.models`, logged as the pyfunc to a throwaway
MLflow store and loaded back, as the gate loads it. Then, alternating back to back so that
machine load falls on both alike:

- current: small batches take the single-thread paths of ml.models (LightGBM num_threads=1,
  XGBoost nthread=1, forests tree by tree without joblib);
- baseline: every batch takes the library's own call, as small batches did before the fast
  paths (all cores for the boosted trees; the forests one job, each tree dispatched by joblib).

Figures: one-row p50/p99 in ms through `predictor(loaded pyfunc)`, the gate's p99 figure, and
baseline/current ratios (> 1: current is faster). Scores are checked to be identical.
Run: .venv/bin/python bench/train/latency.py [--rows 6000] [--calls 300] [--models lightgbm]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings

from bench_env import model_names, prepare

prepare()

import numpy as np  # noqa: E402

import ml.models  # noqa: E402
from flows.config import load_settings  # noqa: E402
from ml.datasets import split_by_time, training_frame_from  # noqa: E402
from ml.metrics import scoring_latency  # noqa: E402
from ml.models import MODEL_TYPES, build_model  # noqa: E402
from ml.pyfunc import TradewatchModel, log_tradewatch_model, predictor  # noqa: E402
from ml.synthetic import synthetic_market  # noqa: E402

CUTOFFS = ("_THREADED_BOOSTING_ROWS", "_PARALLEL_SCORING_ROWS")
CURRENT_CUTOFFS = {name: getattr(ml.models, name) for name in CUTOFFS}
BASELINE_CUTOFFS = dict.fromkeys(CUTOFFS, 0)  # every batch is "large": the library's own call


def use_cutoffs(cutoffs: dict[str, int]) -> None:
    """Set the row counts from which ml.models hands a batch to the library's own call."""
    for name, rows in cutoffs.items():
        setattr(ml.models, name, rows)


def one_row_ms(predict, frame, calls: int, seed: int) -> np.ndarray:
    """Milliseconds of `calls` one-row predictions on random rows (after one warm-up call)."""
    rng = np.random.default_rng(seed)
    predict(frame.iloc[:1])
    out = np.empty(calls)
    for i, row in enumerate(rng.integers(0, len(frame), calls)):
        batch = frame.iloc[row : row + 1]
        began = time.perf_counter()
        predict(batch)
        out[i] = (time.perf_counter() - began) * 1000
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000, help="synthetic trades (default 6000)")
    parser.add_argument("--calls", type=int, default=300, help="one-row calls per setting")
    parser.add_argument("--rounds", type=int, default=3, help="alternations per model")
    parser.add_argument("--models", default=",".join(MODEL_TYPES), help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    names = model_names(parser, args.models, MODEL_TYPES)

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    import mlflow

    settings = load_settings()
    market = synthetic_market(
        args.rows, anomaly_rate=0.03, seed=args.seed, seconds_between_trades=2.0
    )
    split = split_by_time(training_frame_from(market.frame), purge_seconds=600)
    test = split.test
    store = tempfile.mkdtemp(prefix="tradewatch-latency-")
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    mlflow.set_experiment("latency")
    print(
        f"{len(split.train)} training rows, {len(test)} test rows, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; {args.calls} one-row calls x {args.rounds} "
        "rounds per setting"
    )
    header = (
        f"{'model':<17}{'setting':<10}{'1-row p50':>10}{'1-row p99':>10}{'gate p99':>10}"
        "   ms per row"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for name in names:
        model = build_model(name, dict(settings.training.models.get(name, {})))
        model.fit(split.train, split.validation)
        with mlflow.start_run():
            info = log_tradewatch_model(TradewatchModel(model), split.train)
        loaded = mlflow.pyfunc.load_model(info.model_uri)
        predict = predictor(loaded)
        estimator = loaded.unwrap_python_model().model.estimator
        jobs = getattr(estimator, "n_jobs", None)
        samples: dict[str, list[np.ndarray]] = {"current": [], "baseline": []}
        gate: dict[str, list[float]] = {"current": [], "baseline": []}
        scores = {}
        try:
            for round_ in range(args.rounds):
                for label, cutoffs in (
                    ("current", CURRENT_CUTOFFS),
                    ("baseline", BASELINE_CUTOFFS),
                ):
                    use_cutoffs(cutoffs)
                    if isinstance(model, ml.models._Imputed):
                        # one job for the forests' small batches, as before the fast paths
                        # (threads would also sum the trees in a varying order: 1e-16 apart)
                        estimator.n_jobs = jobs if label == "current" else 1
                    seed = args.seed + round_
                    samples[label].append(one_row_ms(predict, test, args.calls, seed))
                    gate[label].append(scoring_latency(predict, test, seed=seed).p99_ms)
                    scores[label] = predict(test)["score"].to_numpy()
        finally:
            use_cutoffs(CURRENT_CUTOFFS)
            if isinstance(model, ml.models._Imputed):
                estimator.n_jobs = jobs
        if not np.array_equal(scores["current"], scores["baseline"]):
            print(f"{name}: current and baseline scores differ", file=sys.stderr)
            return 1
        figures = {}
        for label in ("current", "baseline"):
            times = np.concatenate(samples[label])
            p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
            figures[label] = (p50, p99, float(np.median(gate[label])))
            print(f"{name:<17}{label:<10}{p50:>10.2f}{p99:>10.2f}{figures[label][2]:>10.2f}")
        ratios.append(
            (name, *(b / c for b, c in zip(figures["baseline"], figures["current"], strict=True)))
        )
    print()
    print("baseline / current (> 1: current is faster; gate p99 is the median of the rounds)")
    for name, p50, p99, gate_p99 in ratios:
        print(f"{name:<17}1-row p50 x{p50:.1f}   1-row p99 x{p99:.1f}   gate p99 x{gate_p99:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
