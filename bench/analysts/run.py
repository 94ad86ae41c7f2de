"""Benchmark: publishing the analysts' database at 1M and 5M trades, against the build itself.

For each size a scratch data home gets N simulator-shaped trades written straight into
silver_trades (the generator of bench/features), and one champion score per trade in a
scores file (1 % flagged), as a scoring run leaves them. Then, each in its own process:

- build:   `dbt run` of every model downstream of silver (features, labels, scores, the
           marts, monitoring): what a cycle's build costs at this size;
- publish: `publish_analysts_database` (flows/analysts.py): the public gold and monitoring
           models copied into a new DuckDB file and swapped in.

Printed per size: wall and CPU seconds of both, publish as a share of the build, and disk:
the analysts' database against the warehouse file.

Run: .venv/bin/python bench/analysts/run.py [--sizes 1000000 5000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from bench.features.run import SILVER_SQL, START_MS  # noqa: E402 - the shared generator

QUIET = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "true"}
# silver_trades is written by the benchmark; everything up to it is not rebuilt.
EXCLUDE = "+silver_trades silver_trades_validated silver_trades_quarantine"

SCORES_SQL = """
copy (
    select
        trade_id,
        symbol,
        trade_ts,
        (hash(trade_id) % 10000) / 10000.0 as score,
        (hash(trade_id) % 10000) >= 9900 as flag,
        case when (hash(trade_id) % 10000) >= 9990 then 'critical'
             when (hash(trade_id) % 10000) >= 9950 then 'high'
             when (hash(trade_id) % 10000) >= 9900 then 'medium' else 'low' end as risk_level,
        'lightgbm' as model_name,
        '1' as model_version,
        now()::timestamp as scored_at
    from silver_trades
) to '{path}' (format parquet)
"""


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def step_build(home: str) -> dict:
    from dbt.cli.main import dbtRunner

    os.environ.update(QUIET, TRADEWATCH_HOME=home)
    common = ["--project-dir", str(REPO_ROOT / "dbt_project"), "--profiles-dir", str(REPO_ROOT),
              "--target-path", str(Path(home) / "dbt" / "target"),
              "--log-path", str(Path(home) / "dbt" / "logs"), "--quiet"]
    seeded = dbtRunner().invoke(["seed", *common])
    if not seeded.success:
        raise SystemExit(f"dbt seed failed; see {home}/dbt/logs")
    started, cpu = time.perf_counter(), _cpu_seconds()
    result = dbtRunner().invoke(["run", "--exclude", *EXCLUDE.split(), *common])
    if not result.success:
        raise SystemExit(f"dbt run failed; see {home}/dbt/logs")
    return {"seconds": time.perf_counter() - started, "cpu_seconds": _cpu_seconds() - cpu}


def step_publish(home: str) -> dict:
    from rich.console import Console

    from flows.analysts import publish_analysts_database
    from flows.config import load_settings

    settings = load_settings(environ={**os.environ, **QUIET, "TRADEWATCH_HOME": home})
    started, cpu = time.perf_counter(), _cpu_seconds()
    result = publish_analysts_database(settings, Console(quiet=True))
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu,
        "bytes": result.bytes,
        "rows": sum(result.rows.values()),
        "tables": len(result.rows),
    }


STEPS = {"build": step_build, "publish": step_publish}


def _child(step: str, home: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--step", step, str(home)],
        capture_output=True, text=True, check=False, env={**os.environ, **QUIET},
    )
    if completed.returncode != 0:
        raise SystemExit(f"{step} failed:\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _prepare(home: Path, rows: int) -> None:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute(SILVER_SQL.format(start_ms=START_MS, first=0, rows=rows))
        scores = home / "scores" / "date=2024-03-08"
        scores.mkdir(parents=True)
        con.execute(SCORES_SQL.format(path=scores / "scores-bench.parquet"))


def run(sizes: list[int]) -> None:
    print(f"{'trades':>10} {'build s':>9} {'build CPU':>10} {'publish s':>10} "
          f"{'publish CPU':>12} {'publish/build':>14} {'warehouse MB':>13} {'analysts MB':>12}")
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-analysts-") as folder:
            home = Path(folder)
            _prepare(home, rows)
            build = _child("build", home)
            publish = _child("publish", home)
            warehouse = (home / "warehouse.duckdb").stat().st_size
            print(f"{rows:>10,} {build['seconds']:>9.1f} {build['cpu_seconds']:>10.1f} "
                  f"{publish['seconds']:>10.1f} {publish['cpu_seconds']:>12.1f} "
                  f"{publish['cpu_seconds'] / build['cpu_seconds']:>13.1%} "
                  f"{warehouse / 1e6:>13,.0f} {publish['bytes'] / 1e6:>12,.0f}", flush=True)
            print(f"{'':>10} published {publish['tables']} tables, {publish['rows']:,} rows; "
                  f"wall ratio {publish['seconds'] / build['seconds']:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("home", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(STEPS[args.step](args.home)))
        return
    run(args.sizes)


if __name__ == "__main__":
    main()
