"""Under a collector that never stops, files landing while the build runs are not missing."""

from __future__ import annotations

import os
import time

from expectations.readers import LocalLanding


def _land(directory, name: str, lines: int, age_seconds: float = 0.0):
    path = directory / "date=2024-03-12" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f'{{"trade_id": "t{i}"}}\n' for i in range(lines)))
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_a_file_landed_after_the_build_started_counts_only_once_bronze_has_it(tmp_path):
    ingested = _land(tmp_path, "a.ndjson", 3, age_seconds=60)
    missed = _land(tmp_path, "b.ndjson", 2, age_seconds=60)     # before the build: missing
    read_late = _land(tmp_path, "c.ndjson", 4)                  # during the build, read by it
    _land(tmp_path, "d.ndjson", 5)                              # during the build, not read
    build_started = time.time() - 30
    landing = LocalLanding(tmp_path, settled_before=build_started)
    bronze_files = {str(ingested), str(read_late)}
    # 3 + 4 ingested, and the 2 lines of the file the build should have read stay counted.
    assert landing.count_trade_lines(bronze_files) == 3 + 2 + 4
    assert str(missed) not in bronze_files
    # Without a build start (the validate verb alone) every landed line counts.
    assert LocalLanding(tmp_path).count_trade_lines(bronze_files) == 14
