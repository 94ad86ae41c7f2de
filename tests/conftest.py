"""Session-wide test settings: nothing calls home, and state never lands in the repo's data/."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# `make test` runs the suite on two pytest-xdist workers. A worker's __main__ (execnet's) has
# neither __spec__ nor __file__, which pyspark.sql.connect (imported by Great Expectations)
# takes for a doctest run: it prints "Skipping doctests" and exits the worker.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"


#: The xdist work unit of every test file named *spark*: they run one after another on one
#: worker, so that two Spark sessions (a JVM each, several threads) never compete for the two
#: cores; measured, two at once took three times as long as one after the other.
SPARK_UNIT = "tests named *spark*"


def _is_spark_file(nodeid: str) -> bool:
    return "spark" in nodeid.split("::", 1)[0].rsplit("/", 1)[-1]


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, except that the *spark* files are one unit (see SPARK_UNIT)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class OneSparkSessionAtATime(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SPARK_UNIT if _is_spark_file(nodeid) else super()._split_scope(nodeid)

        def _reschedule(self, node) -> None:
            # xdist hands a worker its next file while two of its tests are still to finish,
            # which reserved a 6-minute module behind the 5-minute Spark demo. A worker holds
            # its last test until it knows the next one, so one is the least that keeps it busy.
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) <= 1:
                self._assign_work_unit(node)

    return OneSparkSessionAtATime(config, log)


def pytest_collection_modifyitems(config, items):
    """Longest modules first (Spark, then slow), each module's own order kept: the two xdist
    workers then start on the long modules and finish together on the short ones. A test that
    starts Spark must live in a file named *spark* (the scheduler above keeps those apart)."""
    misplaced = [item.nodeid for item in items
                 if item.get_closest_marker("spark") and not _is_spark_file(item.nodeid)]
    if misplaced:
        raise pytest.UsageError(
            f"Spark tests must live in a file named *spark*: move {', '.join(misplaced)}"
        )
    rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        spark, slow = item.get_closest_marker("spark"), item.get_closest_marker("slow")
        weight = 0 if spark else 1 if slow else 2
        rank[module] = min(rank.get(module, 2), weight)
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])
