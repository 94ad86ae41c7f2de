"""What the training benchmarks share: telemetry off, the repository importable, and the
parsing of their --models option. Each script imports this first (its own directory is on
sys.path when it runs), before anything from the project."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def prepare() -> None:
    """Switch telemetry off (unless the environment says otherwise) and make the project's
    packages importable from a checkout."""
    for variable, value in TELEMETRY_OFF.items():
        os.environ.setdefault(variable, value)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def model_names(parser: argparse.ArgumentParser, text: str, known: Iterable[str]) -> list[str]:
    """The comma-separated model names of --models; an unknown one is a usage error."""
    known = list(known)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return names
