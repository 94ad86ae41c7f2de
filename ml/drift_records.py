"""The drift file dbt reads: one NDJSON line per feature per drift check.

Columns and their order are core.datahome.DRIFT_RECORDS (the `monitoring.drift` source); the
file is `drift-<run_id>.ndjson`, written once, whole or not at all, through the data home's
atomic write.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from core.datahome import DRIFT_RECORDS, DataHome, as_data_home
from ml.drift_windows import iso_utc

if TYPE_CHECKING:
    from ml.drift import DriftReport


def drift_records(report: DriftReport) -> list[dict[str, Any]]:
    """The rows of the drift file (core.datahome.DRIFT_RECORDS), one per feature."""
    windows = {
        "run_id": report.run_id,
        "run_ts": iso_utc(report.run_ts),
        "reference_start": iso_utc(report.reference_window.start),
        "reference_end": iso_utc(report.reference_window.end),
        "current_start": iso_utc(report.current_window.start),
        "current_end": iso_utc(report.current_window.end),
    }
    return [
        DRIFT_RECORDS.record({
            **windows,
            "feature": f.feature,
            "kind": f.kind,
            "statistic_name": f.statistic_name,
            "statistic": float(f.statistic),
            "threshold": float(f.threshold),
            "drifted": bool(f.drifted),
            "reference_rows": int(f.reference_rows),
            "current_rows": int(f.current_rows),
        })
        for f in report.features
    ]


def write_drift_ndjson(report: DriftReport, directory: DataHome | Path | str) -> PurePath:
    """Write the report as <directory>/drift-<run_id>.ndjson, atomically; return the path.

    `directory` is a folder or a DataHome (core.datahome); the file appears whole or not at
    all, so a reader (dbt) never sees half a report. A run id already written is refused
    (FileExistsError): a drift check is never rewritten.
    """
    folder = as_data_home(directory)
    name = f"drift-{report.run_id}.ndjson"
    if folder.exists(name):
        raise FileExistsError(
            f"drift report {name} already exists in {directory}: use a new run_id"
        )
    body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in drift_records(report))
    return folder.write_atomic(name, body)


def read_newest_drift_records(directory: DataHome | Path | str) -> list[dict[str, Any]] | None:
    """The rows of the newest drift file in `directory`; None when there is none or it cannot
    be read. Run ids start with the run time (YYYYmmddTHHMMSSZ), so the newest sorts last."""
    folder = as_data_home(directory)
    names = folder.list("", DRIFT_RECORDS.pattern)
    if not names:
        return None
    try:
        return [json.loads(line) for line in folder.read(names[-1]).splitlines() if line]
    except (OSError, ValueError):
        return None
