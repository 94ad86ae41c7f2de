"""What validation reads besides the warehouse: the landed trade lines, and frames made fit
for Great Expectations.

The warehouse itself is read through core.warehouse (DuckDB locally, a Databricks SQL
warehouse in production), so the checkpoint and the suites do not know which one they
validate. Great Expectations' own SQL datasource is not used: on DuckDB every metric fails
(GX fetches after closing its connection), and on Databricks pulling rows through GX gains
nothing over the connector. Rows are read into pandas; aggregates run as SQL in the warehouse.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from core.datahome import LocalDataHome
from core.warehouse import Warehouse, sql_literal


def frame_for_validation(frame: pd.DataFrame) -> pd.DataFrame:
    """Widen narrow numeric columns (INTEGER → int64, FLOAT → float64).

    GX's pandas range check is vectorised only for int64 and float64 columns; on any other
    numeric dtype it calls a Python function per row (seconds per million rows).
    """
    for column, dtype in frame.dtypes.items():
        if not isinstance(dtype, np.dtype) or pd.api.types.is_bool_dtype(dtype):
            continue
        if pd.api.types.is_integer_dtype(dtype) and dtype != "int64":
            frame[column] = frame[column].astype("int64")
        elif pd.api.types.is_float_dtype(dtype) and dtype != "float64":
            frame[column] = frame[column].astype("float64")
    return frame


class LandingSource(Protocol):
    """Where the landed trade files are, and how many trade lines they hold."""

    def count_trade_lines(self, ingested: Collection[str] | None = None) -> int:
        """Number of landed trade records (one per non-blank line of every visible file).

        `ingested`: the files bronze has read (its `_source_file` values). A source that
        knows when the build started counts a file landed after that only if it is there:
        a file landing while the build runs is next, not missing.
        """


class LocalLanding:
    """Landed trade files on the local disk: `<home>/landing/trades/date=*/<name>.ndjson`.

    `settled_before` (epoch seconds, e.g. when the dbt build started): files renamed into
    place after it are still arriving. Under a collector that never stops, the checkpoint
    after a build would otherwise find more landed lines than bronze read and call it lost.
    """

    def __init__(self, trades_dir: Path | str, settled_before: float | None = None) -> None:
        self.trades_dir = Path(trades_dir)
        self.settled_before = settled_before

    def files(self) -> list[Path]:
        """Every landed file; names starting with "." are being written and are not landed yet."""
        home = LocalDataHome(self.trades_dir)
        return [self.trades_dir / name for name in home.list("", "*/*.ndjson")]

    def count_trade_lines(self, ingested: Collection[str] | None = None) -> int:
        total = 0
        for path in self.files():
            if (
                self.settled_before is not None
                and ingested is not None
                and str(path) not in ingested
                and path.stat().st_mtime >= self.settled_before
            ):
                continue  # landed while the build ran: the next build reads it
            with open(path, "rb") as handle:
                total += sum(1 for line in handle if line.strip())
        return total


class VolumeLanding:
    """Landed trade files in a Unity Catalog volume, counted by the SQL warehouse."""

    def __init__(self, warehouse: Warehouse, trades_path: str) -> None:
        if not trades_path.startswith("/Volumes/"):
            raise ValueError(f"{trades_path!r}: landed files on Databricks live under /Volumes/")
        self.warehouse = warehouse
        self.trades_path = trades_path.rstrip("/") + "/"

    def count_sql(self) -> str:
        """Counts JSON lines in every partition; Spark skips names starting "." or "_"."""
        return (
            "select count(*) as landing_lines from read_files("
            f"{sql_literal(self.trades_path)}, format => 'json', "
            "pathGlobFilter => '*.ndjson', recursiveFileLookup => true)"
        )

    def count_trade_lines(self, ingested: Collection[str] | None = None) -> int:
        return int(self.warehouse.query(self.count_sql())["landing_lines"].iloc[0])
