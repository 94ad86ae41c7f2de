"""The data home: where each file lives, the files Python writes for dbt, and one atomic write.

The data home is `TRADEWATCH_HOME` (default `data/`) locally; on Databricks the same layout
lives in a Unity Catalog volume. Python writes files there and dbt reads them as sources:

    landing/trades/date=YYYY-MM-DD/*.ndjson     trades, as the Finnhub collector landed them
    landing/bars/interval=*/symbol=*/month=*/bars.ndjson   Alpha Vantage bars
    landing/rejects/date=YYYY-MM-DD/*.ndjson    input the collectors refused, with the reason
    scores/date=YYYY-MM-DD/scores-<run>.parquet  the champion's scores
    shadow_scores/date=YYYY-MM-DD/scores-<run>.parquet  a challenger's shadow scores
    monitoring/drift/drift-<run>.ndjson         one line per feature per drift check
    monitoring/quality/quality-<run>.ndjson     one line per expectation per checkpoint run
    monitoring/audit/audit-YYYY-MM-DD.ndjson    decisions that changed what the platform does
    monitoring/scoring/scoring-<run>-<role>.ndjson  which model version each scoring run used
    simulator/ground_truth/trades.ndjson        the simulator's answer key
    labels/decisions/decisions-<time>-<id>.ndjson  analysts' review decisions (the label store)
    reports/                                    HTML pages (monitoring, drift, Data Docs)
    warehouse.duckdb, mlflow.db, mlartifacts/   the local warehouse and MLflow store

`FileContract` names each file dbt reads with its columns (a test holds them to the dbt
sources). Every file appears whole or not at all: it is written under a hidden temporary name
beside its final one, fsynced, renamed into place and the directory fsynced (`write_atomic`);
readers skip names starting with ".". `DataHome` is that write, plus listing, reading and
removing, as a small interface: `LocalDataHome` is a folder on this machine,
`core.volume.VolumeDataHome` a Unity Catalog volume written through the Files API, and `within`
a folder of either.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from types import MappingProxyType
from typing import Any, Final, Protocol, runtime_checkable

from core.schema import BOOLEAN, FLOAT, INTEGER, LIST, STRING, TIMESTAMP

# --------------------------------------------------------------------------- layout

LANDING: Final = "landing"
LANDING_TRADES: Final = "landing/trades"
LANDING_BARS: Final = "landing/bars"
LANDING_REJECTS: Final = "landing/rejects"
SCORES: Final = "scores"
SHADOW_SCORES: Final = "shadow_scores"
MONITORING: Final = "monitoring"
DRIFT_RECORDS_DIR: Final = "monitoring/drift"
QUALITY_RESULTS_DIR: Final = "monitoring/quality"
AUDIT_DIR: Final = "monitoring/audit"
SCORING_RUNS_DIR: Final = "monitoring/scoring"
GX_DIR: Final = "monitoring/gx"
REPORTS: Final = "reports"
DRIFT_REPORTS_DIR: Final = "reports/drift"
DATA_DOCS_DIR: Final = "reports/data_docs"
SIMULATOR: Final = "simulator"
GROUND_TRUTH_DIR: Final = "simulator/ground_truth"
WAREHOUSE_FILE: Final = "warehouse.duckdb"
MLFLOW_DB: Final = "mlflow.db"
MLARTIFACTS: Final = "mlartifacts"
LABEL_DECISIONS_DIR: Final = "labels/decisions"


class HomeLayout:
    """Every location of a local data home as a `Path` property; `self.home` is its root.

    A mixin: the class that uses it provides `home` (a field of the settings, or an attribute).
    """

    home: Path

    def _at(self, relative: str) -> Path:
        return Path(self.home) / relative

    @property
    def landing(self) -> Path:
        return self._at(LANDING)

    @property
    def landing_trades(self) -> Path:
        return self._at(LANDING_TRADES)

    @property
    def landing_bars(self) -> Path:
        return self._at(LANDING_BARS)

    @property
    def landing_rejects(self) -> Path:
        return self._at(LANDING_REJECTS)

    @property
    def warehouse(self) -> Path:
        return self._at(WAREHOUSE_FILE)

    @property
    def mlflow_db(self) -> Path:
        return self._at(MLFLOW_DB)

    @property
    def mlartifacts(self) -> Path:
        return self._at(MLARTIFACTS)

    @property
    def scores(self) -> Path:
        return self._at(SCORES)

    @property
    def shadow_scores(self) -> Path:
        """A registered challenger's scores of live trades: compared, never alerted on."""
        return self._at(SHADOW_SCORES)

    @property
    def monitoring(self) -> Path:
        return self._at(MONITORING)

    @property
    def scoring_runs(self) -> Path:
        """One record per scoring run (which version scored)."""
        return self._at(SCORING_RUNS_DIR)

    @property
    def drift_records(self) -> Path:
        return self._at(DRIFT_RECORDS_DIR)

    @property
    def quality_results(self) -> Path:
        return self._at(QUALITY_RESULTS_DIR)

    @property
    def audit(self) -> Path:
        return self._at(AUDIT_DIR)

    @property
    def gx(self) -> Path:
        return self._at(GX_DIR)

    @property
    def reports(self) -> Path:
        return self._at(REPORTS)

    @property
    def drift_reports(self) -> Path:
        return self._at(DRIFT_REPORTS_DIR)

    @property
    def data_docs(self) -> Path:
        return self._at(DATA_DOCS_DIR)

    @property
    def simulator(self) -> Path:
        return self._at(SIMULATOR)

    @property
    def ground_truth(self) -> Path:
        return self._at(GROUND_TRUTH_DIR)

    @property
    def label_decisions(self) -> Path:
        """The label store: analysts' confirm/dismiss decisions, one file per review call."""
        return self._at(LABEL_DECISIONS_DIR)


# --------------------------------------------------------------------------- file contracts


@dataclass(frozen=True)
class FileContract:
    """A kind of file Python writes in the data home: where, which names, which columns.

    `source` is the dbt source that reads it (`<source>.<table>`, None when dbt does not);
    `directory` is relative to the data home and `pattern` matches the completed files under
    it; `columns` maps each column, in file order, to its logical type (core.schema).
    """

    source: str | None
    directory: str
    pattern: str
    columns: Mapping[str, str]
    file_format: str = "ndjson"

    def record(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` as one row of this file: exactly the contract's columns, in its order.

        A missing or an unexpected column raises ValueError naming it: a writer that drifts
        from the contract fails where it writes, not in a dbt build later.
        """
        missing = [column for column in self.columns if column not in values]
        unexpected = [key for key in values if key not in self.columns]
        if missing or unexpected:
            raise ValueError(
                f"a {self.directory} record does not match its contract: "
                f"missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}"
            )
        return {column: values[column] for column in self.columns}


def _columns(**columns: str) -> Mapping[str, str]:
    return MappingProxyType(columns)


LANDED_TRADES: Final = FileContract(
    source="landing.trades",
    directory=LANDING_TRADES,
    pattern="date=*/*.ndjson",
    columns=_columns(
        trade_id=STRING, symbol=STRING, price=FLOAT, volume=FLOAT, trade_ts_ms=INTEGER,
        conditions=LIST, exchange=STRING, received_at=STRING, source=STRING,
    ),
)
LANDED_BARS: Final = FileContract(
    source="landing.bars",
    directory=LANDING_BARS,
    pattern="interval=*/symbol=*/month=*/bars.ndjson",
    columns=_columns(
        symbol=STRING, interval=STRING, bar_ts_utc=STRING, bar_local=STRING, time_zone=STRING,
        open=FLOAT, high=FLOAT, low=FLOAT, close=FLOAT, volume=FLOAT, source=STRING,
        fetched_at=STRING,
    ),
)
LANDED_REJECTS: Final = FileContract(
    source=None,
    directory=LANDING_REJECTS,
    pattern="date=*/*.ndjson",
    columns=_columns(
        received_at=STRING, source=STRING, reason=STRING, raw=STRING, raw_bytes=INTEGER,
    ),
)
SCORES_FILES: Final = FileContract(
    source="scoring.scores",
    directory=SCORES,
    pattern="date=*/scores-*.parquet",
    columns=_columns(
        trade_id=STRING, symbol=STRING, trade_ts=TIMESTAMP, score=FLOAT, flag=BOOLEAN,
        risk_level=STRING, model_name=STRING, model_version=STRING, scored_at=TIMESTAMP,
    ),
    file_format="parquet",
)
SHADOW_SCORES_FILES: Final = FileContract(
    source="scoring.shadow_scores",
    directory=SHADOW_SCORES,
    pattern=SCORES_FILES.pattern,
    columns=SCORES_FILES.columns,
    file_format="parquet",
)
SCORING_RUNS: Final = FileContract(
    source="monitoring.scoring_runs",
    directory=SCORING_RUNS_DIR,
    pattern="scoring-*.ndjson",
    columns=_columns(
        run_id=STRING, run_ts=STRING, role=STRING, model_name=STRING, model_version=STRING,
        rows_scored=INTEGER, rows_rescored=INTEGER, flagged=INTEGER,
    ),
)
DRIFT_RECORDS: Final = FileContract(
    source="monitoring.drift",
    directory=DRIFT_RECORDS_DIR,
    pattern="drift-*.ndjson",
    columns=_columns(
        run_id=STRING, run_ts=STRING, feature=STRING, kind=STRING, statistic_name=STRING,
        statistic=FLOAT, threshold=FLOAT, drifted=BOOLEAN, reference_rows=INTEGER,
        current_rows=INTEGER, reference_start=STRING, reference_end=STRING,
        current_start=STRING, current_end=STRING,
    ),
)
QUALITY_RESULTS: Final = FileContract(
    source="monitoring.quality",
    directory=QUALITY_RESULTS_DIR,
    pattern="quality-*.ndjson",
    columns=_columns(
        run_id=STRING, run_ts=STRING, suite=STRING, expectation=STRING, column=STRING,
        severity=STRING, success=BOOLEAN, observed_value=STRING, details=STRING,
    ),
)
AUDIT_EVENTS: Final = FileContract(
    source="monitoring.audit",
    directory=AUDIT_DIR,
    pattern="audit-*.ndjson",
    columns=_columns(event_id=STRING, event_ts=STRING, kind=STRING, payload=STRING),
)
GROUND_TRUTH_TRADES: Final = FileContract(
    source="simulator.ground_truth_trades",
    directory=GROUND_TRUTH_DIR,
    pattern="trades.ndjson",
    columns=_columns(
        trade_id=STRING, event_id=STRING, kind=STRING, symbol=STRING, trade_ts_ms=INTEGER,
    ),
)
LABEL_DECISIONS: Final = FileContract(
    source="labels.decisions",
    directory=LABEL_DECISIONS_DIR,
    pattern="decisions-*.ndjson",
    # decision: confirm or dismiss; anomaly_kind null on dismiss; decided_at ISO-8601 UTC "Z".
    columns=_columns(
        decision_id=STRING, trade_id=STRING, decision=STRING, is_anomaly=BOOLEAN,
        anomaly_kind=STRING, reviewer=STRING, reason=STRING, decided_at=TIMESTAMP,
    ),
)
#: Every file contract, for checks that go through all of them.
FILE_CONTRACTS: Final = (
    LANDED_TRADES, LANDED_BARS, LANDED_REJECTS, SCORES_FILES, SHADOW_SCORES_FILES, SCORING_RUNS,
    DRIFT_RECORDS, QUALITY_RESULTS, AUDIT_EVENTS, GROUND_TRUTH_TRADES, LABEL_DECISIONS,
)

# --------------------------------------------------------------------------- atomic write

#: What `write_atomic` takes: bytes (or a buffer), text (written as UTF-8) or chunks of bytes.
Data = bytes | bytearray | memoryview | str | Iterable[bytes | bytearray | memoryview]

# ".<final name>.<token>.<pid>@<host>.tmp": the writer's pid and host tell whether it may still
# be writing (older writers left ".<final name>.<token>.<pid>.tmp", without the host).
_TEMP_NAME = re.compile(r"^\..+\.(\d+)(?:@([A-Za-z0-9-]+))?\.tmp$")
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:48] or "host"
#: A temporary untouched this long is no live writer's, whichever host it came from.
STALE_TEMP_SECONDS = 15 * 60


def write_atomic(path: Path | str, data: Data) -> Path:
    """Write `data` to `path` so that `path` appears complete or not at all; return `path`.

    The data goes to a hidden temporary beside `path` (".<name>.<token>.<pid>@<host>.tmp"), is
    fsynced, renamed over `path`, and the directory is fsynced: neither a crash nor a concurrent
    reader sees a partial file, and a reader that skips hidden names never sees the temporary.
    On any error the temporary is removed and the error raised; `path` keeps what it had.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(
        f".{path.name}.{secrets.token_hex(4)}.{os.getpid()}@{_HOST}.tmp"
    )
    try:
        with open(temporary, "wb") as handle:
            if isinstance(data, str):
                handle.write(data.encode("utf-8"))
            elif isinstance(data, bytes | bytearray | memoryview):
                handle.write(data)
            else:
                handle.writelines(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temp_files(
    root: Path | str, *, min_age_seconds: float = STALE_TEMP_SECONDS
) -> list[Path]:
    """Delete temporaries under `root` left by writers that no longer run; return them.

    A temporary of this host whose writer is alive (another process, or this one) is left
    alone. `os.kill(pid, 0)` only sees this host's processes, so a temporary of another host
    sharing the volume (or of an older writer that did not name its host) is deleted only once
    it has not changed for `min_age_seconds`.
    """
    now = time.time()
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for directory, _, names in os.walk(root):
        for name in names:
            match = _TEMP_NAME.match(name)
            if match is None:
                continue
            pid, host = int(match.group(1)), match.group(2)
            path = Path(directory) / name
            with contextlib.suppress(FileNotFoundError):
                if host == _HOST:
                    if pid == os.getpid() or _process_alive(pid):
                        continue
                elif now - path.stat().st_mtime < min_age_seconds:
                    continue
                path.unlink()
                removed.append(path)
    return removed


# --------------------------------------------------------------------------- the interface


@runtime_checkable
class DataHome(Protocol):
    """A place files are written whole, listed and read, by paths relative to its root.

    Relative paths use "/" and never leave the root. Names starting with "." (temporaries,
    hidden files) are never listed.
    """

    def write_atomic(self, relative: str, data: Data) -> PurePath:
        """Write one file so that it appears complete or not at all; return where it is."""
        ...

    def read(self, relative: str) -> bytes:
        """The content of one file (FileNotFoundError when there is none)."""
        ...

    def list(self, relative: str = "", pattern: str = "*") -> list[str]:
        """Completed files under `relative` matching the glob `pattern`, sorted, relative to
        the root (so that they can be handed to `read`); empty when the folder is missing."""
        ...

    def exists(self, relative: str) -> bool:
        """Whether a file is there."""
        ...

    def remove(self, relative: str) -> None:
        """Delete one file; a file that is not there is fine (removing twice is harmless)."""
        ...


class LocalDataHome:
    """A data home in a folder on this machine."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalDataHome({str(self.root)!r})"

    def path(self, relative: str = "") -> Path:
        """The local path of `relative` (ValueError for a path that would leave the root)."""
        parts = PurePosixPath(relative).parts
        if PurePosixPath(relative).is_absolute() or ".." in parts:
            raise ValueError(f"{relative!r} is not a path inside the data home {self.root}")
        return self.root.joinpath(*parts)

    def write_atomic(self, relative: str, data: Data) -> Path:
        return write_atomic(self.path(relative), data)

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def list(self, relative: str = "", pattern: str = "*") -> list[str]:
        folder = self.path(relative)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.glob(pattern):
            inside = path.relative_to(folder).parts
            if path.is_file() and not any(part.startswith(".") for part in inside):
                found.append(path.relative_to(self.root).as_posix())
        return sorted(found)

    def exists(self, relative: str) -> bool:
        return self.path(relative).is_file()

    def remove(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)


def as_data_home(place: DataHome | Path | str) -> DataHome:
    """`place` itself when it is a DataHome, else the local folder it names."""
    if isinstance(place, str | os.PathLike):
        return LocalDataHome(Path(place))
    return place


class _Within:
    """The folder `prefix` of another data home, as a data home of its own."""

    def __init__(self, home: DataHome, prefix: str) -> None:
        self.home = home
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"{self.home!r}/{self.prefix}"

    def _at(self, relative: str) -> str:
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{relative!r} is not a path inside {self!r}")
        return "/".join([self.prefix, *path.parts])

    def write_atomic(self, relative: str, data: Data) -> PurePath:
        return self.home.write_atomic(self._at(relative), data)

    def read(self, relative: str) -> bytes:
        return self.home.read(self._at(relative))

    def list(self, relative: str = "", pattern: str = "*") -> list[str]:
        cut = len(self.prefix) + 1
        return [path[cut:] for path in self.home.list(self._at(relative), pattern)]

    def exists(self, relative: str) -> bool:
        return self.home.exists(self._at(relative))

    def remove(self, relative: str) -> None:
        self.home.remove(self._at(relative))


def within(home: DataHome, relative: str) -> DataHome:
    """The folder `relative` of `home` as a data home whose paths are relative to it (a local
    home gives the local home of that folder)."""
    relative = PurePosixPath(relative).as_posix().strip("/")
    if not relative or relative == ".":
        return home
    if isinstance(home, LocalDataHome):
        return LocalDataHome(home.path(relative))
    if isinstance(home, _Within):
        return _Within(home.home, home._at(relative))
    return _Within(home, relative)
