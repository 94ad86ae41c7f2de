"""`tradewatch mf`: MetricFlow's `mf` on the analysts' database, with nothing to set up.

The metrics, semantic models and saved queries are defined in
dbt_project/models/gold/_gold__metrics.yml. `mf` reads them from
`dbt_project/target/semantic_manifest.json` (a fixed path: `dbt parse` writes it there, and
this module runs it when a project file is newer) and queries through the dbt profile's
`analysts` target: the analysts' database attached read-only, so a metric query never blocks
the pipeline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from flows.analysts import AnalystsDatabaseMissing, analysts_database
from flows.config import Settings
from flows.transform import _QUIET_ENV, DBT_PROJECT_DIR, PROFILES_DIR, TransformFailed

SEMANTIC_MANIFEST = DBT_PROJECT_DIR / "target" / "semantic_manifest.json"
ANALYSTS_TARGET = "analysts"


def _newest_project_change() -> float:
    paths = [DBT_PROJECT_DIR / "dbt_project.yml", PROFILES_DIR / "profiles.yml"]
    for folder in ("models", "macros", "seeds"):
        paths += [path for path in (DBT_PROJECT_DIR / folder).rglob("*") if path.is_file()]
    return max(path.stat().st_mtime for path in paths)


def mf_environment(settings: Settings) -> dict[str, str]:
    """The environment `mf` runs in: the project, the profile's analysts target, the home."""
    return {
        **os.environ,
        **_QUIET_ENV,
        "TRADEWATCH_HOME": str(settings.paths.home.resolve()),
        "TRADEWATCH_DBT_TARGET": ANALYSTS_TARGET,
        "DBT_PROFILES_DIR": str(PROFILES_DIR),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
    }


def ensure_semantic_manifest(settings: Settings) -> Path:
    """`dbt parse` into dbt_project/target when the semantic manifest is missing or stale."""
    if SEMANTIC_MANIFEST.exists() and SEMANTIC_MANIFEST.stat().st_mtime >= _newest_project_change():
        return SEMANTIC_MANIFEST
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "parse", "--quiet",
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR),
         "--target-path", str(SEMANTIC_MANIFEST.parent)],
        env=mf_environment(settings), capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0 or not SEMANTIC_MANIFEST.exists():
        detail = " ".join((completed.stdout + completed.stderr).split())[-300:]
        raise TransformFailed(f"dbt parse could not write the semantic manifest: {detail}")
    return SEMANTIC_MANIFEST


#: `mf` as its console script runs it, without the update check that asks PyPI on every call
#: (nothing Tradewatch runs calls home).
_MF_LAUNCHER = (
    "import sys, update_checker\n"
    "update_checker.UpdateChecker.check = lambda *args, **kwargs: None\n"
    "from dbt_metricflow.cli.main import cli\n"
    "sys.argv[0] = 'mf'\n"
    "sys.exit(cli())\n"
)


def mf_command(arguments: Sequence[str]) -> list[str]:
    """The `mf` command line of this environment (MetricFlow's CLI, no update check)."""
    return [sys.executable, "-c", _MF_LAUNCHER, *arguments]


def run_mf(settings: Settings, arguments: Sequence[str]) -> int:
    """Run `mf ARGUMENTS` on the analysts' database; return its exit code."""
    database = analysts_database(settings)
    if "query" in arguments and not database.exists():  # listing and help need no data
        raise AnalystsDatabaseMissing(
            f"no analysts' database at {database}: run `tradewatch transform` (or `tradewatch "
            "demo`), which publishes it after the build"
        )
    ensure_semantic_manifest(settings)
    return subprocess.run(
        mf_command(arguments or ["--help"]), env=mf_environment(settings), cwd=DBT_PROJECT_DIR,
        check=False,
    ).returncode
