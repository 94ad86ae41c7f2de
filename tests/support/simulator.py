"""The simulated market as a real server on 127.0.0.1, started by a test and stopped after it.

- `simulator(**fields)` starts a simulator with any SimulatorConfig fields and returns its
  handle (ws_url, av_url, stats(), sent_trade_ids(), wait_finished()); every simulator a test
  started is stopped at teardown. Test defaults: ground truth under
  `tmp_path / "simulator" / "ground_truth"` and record_sent_ids=True.

A folder's conftest.py makes the fixtures available with
`from tests.support.simulator import ground_truth_dir, simulator`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.simulator import Simulator, SimulatorConfig, SimulatorHandle


@pytest.fixture
def ground_truth_dir(tmp_path: Path) -> Path:
    """Where the simulator started by `simulator` writes events.ndjson and trades.ndjson."""
    return tmp_path / "simulator" / "ground_truth"


@pytest.fixture
def simulator(ground_truth_dir: Path) -> Iterator[Callable[..., SimulatorHandle]]:
    """Factory: `simulator(max_trades=1000, faults=FaultConfig(...))` → a running simulator."""
    handles: list[SimulatorHandle] = []

    def start(**fields: Any) -> SimulatorHandle:
        fields.setdefault("ground_truth_dir", ground_truth_dir)
        fields.setdefault("record_sent_ids", True)
        handle = Simulator(SimulatorConfig(**fields)).start()
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()
