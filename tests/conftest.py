"""Session-wide test settings: nothing calls home, and state never lands in the repo's data/."""

from __future__ import annotations

import os
import sys

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


def pytest_collection_modifyitems(config, items):
    """Longest modules first (Spark, then slow), each module's own order kept: the two xdist
    workers then start on the long modules and finish together on the short ones."""
    rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        spark, slow = item.get_closest_marker("spark"), item.get_closest_marker("slow")
        weight = 0 if spark else 1 if slow else 2
        rank[module] = min(rank.get(module, 2), weight)
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])
