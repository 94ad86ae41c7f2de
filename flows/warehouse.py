"""One warehouse, one writer: the Prefect concurrency limit every warehouse step shares.

DuckDB lets one process write its file, and a reader in another process blocks that writer.
Every flow step that opens the warehouse (dbt build, the quality checkpoint, reading scoring,
training and drift data, the report) holds the one slot of the global concurrency limit
`tradewatch-warehouse` while it does: runs of different deployments queue for it instead of
failing, and the Prefect UI shows who holds it (Concurrency → Global). Outside a Prefect run
(a plain `tradewatch` verb) there is nothing to queue with and the step runs directly.

A lock held by a process outside Prefect (an analyst's DuckDB session) surfaces as
`WarehouseBusy` or a `WarehouseLocked` transform failure: transient errors the tasks retry.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

WAREHOUSE_LIMIT = "tradewatch-warehouse"
#: A holder that dies frees its slot when the lease runs out unrenewed.
LEASE_SECONDS = 120.0

log = logging.getLogger(__name__)
_limits_ensured: set[str] = set()


def _in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def ensure_warehouse_limit(slots: int = 1) -> None:
    """Create (or reset to `slots`) the global concurrency limit on the current Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value() or "ephemeral")
    if api in _limits_ensured:
        return
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(WAREHOUSE_LIMIT, slots)
    _limits_ensured.add(api)


@contextlib.contextmanager
def warehouse_slot(what: str) -> Iterator[None]:
    """Hold the warehouse's concurrency slot while `what` runs (inside a Prefect run only)."""
    if not _in_prefect_run():
        yield
        return
    from prefect.concurrency.sync import concurrency

    ensure_warehouse_limit()
    log.debug("waiting for the warehouse slot: %s", what)
    with concurrency(WAREHOUSE_LIMIT, occupy=1, lease_duration=LEASE_SECONDS, strict=True):
        yield


def is_lock_message(text: str) -> bool:
    """True for DuckDB's "file is locked by another process" errors."""
    lowered = text.lower()
    return "could not set lock" in lowered or "conflicting lock" in lowered
