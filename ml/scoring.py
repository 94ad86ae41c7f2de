"""Batch scoring: a registered model scores trades and writes parquet files for dbt.

Files follow the scores contract (core.datahome.SCORES_FILES):
<dir>/date=YYYY-MM-DD/scores-<run_id>.parquet (date = UTC date of the trade), columns trade_id,
symbol, trade_ts, score, flag, risk_level, model_name, model_version, scored_at. The champion
writes under scores/, a challenger's shadow scores go to shadow_scores/ (SHADOW_SCORES_FILES:
the same columns; nothing reads them as alerts or flags). Each file is written with the atomic
write of a data home (core.datahome: a local folder, or a Unity Catalog volume through the
Files API), so a reader never sees a partial file. Scores are never rewritten:
a trade scored again (by a new or restored champion) gets a new row with its model version, and
`write_scoring_run` records which version scored last (core.datahome.SCORING_RUNS), which
gold_anomaly_scores reads to show the current champion's score of every trade.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.datahome import SCORES_FILES, SCORING_RUNS, DataHome, LocalDataHome, as_data_home
from core.schema import BOOLEAN, FLOAT, STRING, TIMESTAMP
from ml.datasets import remember_scored, scored_trade_ids
from ml.pyfunc import predictor

# Microsecond timestamps: Spark cannot read nanosecond parquet timestamps.
_ARROW_TYPES: dict[str, pa.DataType] = {
    STRING: pa.string(),
    FLOAT: pa.float64(),
    BOOLEAN: pa.bool_(),
    TIMESTAMP: pa.timestamp("us", tz="UTC"),
}
SCORES_SCHEMA = pa.schema(
    [(column, _ARROW_TYPES[kind]) for column, kind in SCORES_FILES.columns.items()]
)


SCORING_ROLES = ("champion", "shadow")


@dataclass(frozen=True)
class ScoringResult:
    """What one scoring run wrote."""

    run_id: str
    rows_scored: int
    rows_already_scored: int
    flagged: int
    files: tuple[PurePath, ...]
    model_version: str | None = None


def _parquet(table: pa.Table) -> memoryview:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return memoryview(sink.getvalue())


def score_new_trades(
    features: pd.DataFrame,
    *,
    model: Any,
    model_name: str,
    model_version: str,
    scores_dir: DataHome | Path | str,
    already_scored: Iterable[str] | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
    scores_cache: Path | str | None = None,
) -> ScoringResult:
    """Score the rows of `features` that have no score yet and write them per trade date.

    `model` is a loaded pyfunc (or any object with the same `predict`); `already_scored`
    defaults to the trade ids found in `scores_dir`. When `scores_dir` is a volume,
    `scores_cache` (a local folder) is where what its files hold is cached
    (`scored_trade_ids`), and the files written here go into it too.
    """
    run_id = run_id or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    scored_at = (now or datetime.now(UTC)).astimezone(UTC)
    known = (set(already_scored) if already_scored is not None
             else scored_trade_ids(scores_dir, scores_cache=scores_cache))
    fresh = features.drop_duplicates("trade_id")
    fresh = fresh.loc[~fresh["trade_id"].isin(known)].reset_index(drop=True)
    skipped = int(features["trade_id"].nunique() - len(fresh))
    if fresh.empty:
        return ScoringResult(run_id, 0, skipped, 0, (), str(model_version))

    predictions = predictor(model)(fresh)
    trade_ts = (
        pd.to_datetime(fresh["trade_ts_ms"], unit="ms", utc=True)
        if "trade_ts_ms" in fresh
        else pd.to_datetime(fresh["trade_ts"], utc=True)
    )
    out = pd.DataFrame(
        {
            "trade_id": fresh["trade_id"].astype(str),
            "symbol": fresh["symbol"].astype(str),
            "trade_ts": trade_ts,
            "score": predictions["score"].astype("float64"),
            "flag": predictions["flag"].astype(bool),
            "risk_level": predictions["risk_level"].astype(str),
            "model_name": model_name,
            "model_version": str(model_version),
            "scored_at": pd.Timestamp(scored_at),
        }
    )
    home = as_data_home(scores_dir)
    files: list[PurePath] = []
    for day, rows in out.groupby(out["trade_ts"].dt.strftime("%Y-%m-%d"), sort=True):
        table = pa.Table.from_pandas(
            rows.reset_index(drop=True), schema=SCORES_SCHEMA, preserve_index=False
        )
        name = f"date={day}/scores-{run_id}.parquet"
        files.append(home.write_atomic(name, _parquet(table)))
        if scores_cache is not None and not isinstance(home, LocalDataHome):
            remember_scored(scores_cache, name, table)  # the next run need not download it
    return ScoringResult(
        run_id, len(out), skipped, int(out["flag"].sum()), tuple(files), str(model_version)
    )


def write_scoring_run(
    directory: DataHome | Path | str,
    result: ScoringResult,
    *,
    role: str,
    model_name: str,
    rows_rescored: int = 0,
    now: datetime | None = None,
) -> PurePath:
    """Record one scoring run as monitoring/scoring/scoring-<run_id>-<role>.ndjson (one line);
    `directory` is a folder or a data home.

    Written even when nothing was scored: the newest champion record names the version whose
    scores gold_anomaly_scores shows, so a rollback takes effect with the next scoring run.
    """
    if role not in SCORING_ROLES:
        raise ValueError(f"role must be one of {SCORING_ROLES}, got {role!r}")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    record = SCORING_RUNS.record({
        "run_id": result.run_id,
        "run_ts": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "role": role,
        "model_name": model_name,
        "model_version": result.model_version,
        "rows_scored": result.rows_scored,
        "rows_rescored": rows_rescored,
        "flagged": result.flagged,
    })
    return as_data_home(directory).write_atomic(
        f"scoring-{result.run_id}-{role}.ndjson", json.dumps(record) + "\n"
    )
