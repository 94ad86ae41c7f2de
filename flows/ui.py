"""`tradewatch ui`: the Prefect UI, the MLflow UI, dbt docs, the review page and the
documentation site on 127.0.0.1, stopped together.

Each runs as its own process group, so that Ctrl-C (or SIGTERM) stops every child, including
the workers the servers start themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flows.config import Settings
from flows.engine import mlflow_stores
from flows.transform import DBT_PROJECT_DIR, PROFILES_DIR, REPO_ROOT, dbt_paths, run_dbt_docs

HOST = "127.0.0.1"
QUIET_ENV = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # mlflow's job runner leaves huey consumers behind after SIGTERM: no job runner.
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


MKDOCS_CONFIG = REPO_ROOT / "mkdocs.yml"
#: Material and a plugin print notices about MkDocs' future on every build: not our warnings.
MKDOCS_QUIET_ENV = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
#: Where `make docs` builds the site.
BUILT_SITE = REPO_ROOT / "site"


class UiFailed(RuntimeError):
    """A UI server did not come up."""


@dataclass(frozen=True)
class UiServer:
    """One server: what it is, where it answers, and the command that runs it."""

    name: str
    url: str
    health_url: str
    command: list[str]
    cwd: Path | None = None
    env: tuple[tuple[str, str], ...] = ()


def build_site(settings: Settings) -> tuple[Path | None, str]:
    """The documentation site to serve, and where it came from (or why there is none).

    With MkDocs installed (the `docs` extra) the site is built afresh into <home>/site, so it
    describes the code that runs; otherwise the site/ of an earlier `make docs` is served.
    """
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if mkdocs.exists() and MKDOCS_CONFIG.exists():
        site = settings.paths.home.resolve() / "site"
        built = subprocess.run(
            [str(mkdocs), "build", "--quiet", "--config-file", str(MKDOCS_CONFIG),
             "--site-dir", str(site)],
            cwd=REPO_ROOT, capture_output=True, text=True, check=False,
            env={**os.environ, **QUIET_ENV, **MKDOCS_QUIET_ENV},
        )
        if built.returncode == 0:
            return site, "built from docs/"
        lines = [line for line in built.stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"mkdocs exited with code {built.returncode}"
        return None, f"the site did not build ({reason[:300]})"
    if (BUILT_SITE / "index.html").exists():
        return BUILT_SITE, "from `make docs`"
    return None, "not built: run `make docs`"


def ui_servers(
    settings: Settings,
    *,
    prefect_port: int = 4200,
    mlflow_port: int = 5000,
    docs_port: int = 8080,
    site_port: int = 8000,
    review_port: int = 8090,
    site: Path | None = None,
) -> list[UiServer]:
    """The servers for this data home; the documentation site's only when `site` is given."""
    from flows.review_page import SETTINGS_ENV

    bin_dir = Path(sys.executable).parent
    target_path, _ = dbt_paths(settings)
    servers = [
        UiServer(
            "Prefect UI",
            f"http://{HOST}:{prefect_port}",
            f"http://{HOST}:{prefect_port}/api/health",
            [str(bin_dir / "prefect"), "server", "start", "--host", HOST,
             "--port", str(prefect_port)],
            # The UI's browser code calls this address; it defaults to port 4200.
            env=(("PREFECT_UI_API_URL", f"http://{HOST}:{prefect_port}/api"),),
        ),
        UiServer(
            "MLflow UI",
            f"http://{HOST}:{mlflow_port}",
            f"http://{HOST}:{mlflow_port}/health",
            [str(bin_dir / "mlflow"), "server", "--host", HOST, "--port", str(mlflow_port),
             "--backend-store-uri", mlflow_stores(settings, "local").tracking_uri,
             "--default-artifact-root", settings.paths.mlartifacts.resolve().as_uri(),
             "--workers", "1"],
        ),
        UiServer(
            "dbt docs",
            f"http://{HOST}:{docs_port}",
            f"http://{HOST}:{docs_port}/index.html",
            [str(bin_dir / "dbt"), "docs", "serve", "--host", HOST, "--port", str(docs_port),
             "--no-browser", "--project-dir", str(DBT_PROJECT_DIR),
             "--profiles-dir", str(PROFILES_DIR), "--target-path", str(target_path)],
            cwd=DBT_PROJECT_DIR,
        ),
        UiServer(
            "Review",
            f"http://{HOST}:{review_port}",
            f"http://{HOST}:{review_port}/health",
            [sys.executable, "-m", "flows.review_page", "--port", str(review_port)],
            cwd=REPO_ROOT,
            # The very settings of this process (a --config file, a test's changes).
            env=((SETTINGS_ENV, settings.model_dump_json()),),
        ),
    ]
    if site is not None:
        servers.append(UiServer(
            "Documentation",
            f"http://{HOST}:{site_port}",
            f"http://{HOST}:{site_port}/index.html",
            [sys.executable, "-m", "http.server", str(site_port), "--bind", HOST,
             "--directory", str(site)],
        ))
    return servers


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except (urllib.error.URLError, OSError):
        return False


def stop_all(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every process group, then SIGKILL what is still there after 10 s."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_all(servers: list[UiServer], settings: Settings, *, timeout: float = 90.0):
    """Start every server and wait until each answers; stop them all if one does not."""
    env = {**os.environ, **QUIET_ENV, "TRADEWATCH_HOME": str(settings.paths.home.resolve())}
    logs = settings.paths.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []
    try:
        for server in servers:
            log = open(logs / f"{server.name.split()[0].lower()}-ui.log", "ab")  # noqa: SIM115
            processes.append(subprocess.Popen(
                server.command, cwd=server.cwd, env={**env, **dict(server.env)}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            ))
        deadline = time.monotonic() + timeout
        for server, process in zip(servers, processes, strict=True):
            while not _healthy(server.health_url):
                if process.poll() is not None:
                    raise UiFailed(f"{server.name} exited with code {process.returncode} "
                                   f"(log: {logs})")
                if time.monotonic() > deadline:
                    raise UiFailed(f"{server.name} did not answer at {server.url} within "
                                   f"{timeout:.0f} s (log: {logs})")
                time.sleep(0.5)
    except BaseException:
        stop_all(processes)
        raise
    return processes


def run_ui(
    settings: Settings,
    *,
    prefect_port: int = 4200,
    mlflow_port: int = 5000,
    docs_port: int = 8080,
    site_port: int = 8000,
    review_port: int = 8090,
) -> int:
    """Start the UIs and the documentation site, print their addresses, stop them all on
    Ctrl-C or SIGTERM. Without a documentation site the others still start, and it says so."""
    settings.paths.home.mkdir(parents=True, exist_ok=True)
    run_dbt_docs(settings, target="local")
    site, site_note = build_site(settings)
    servers = ui_servers(
        settings, prefect_port=prefect_port, mlflow_port=mlflow_port, docs_port=docs_port,
        site_port=site_port, review_port=review_port, site=site,
    )
    processes = start_all(servers, settings)
    for server in servers:
        print(f"{server.name:14} {server.url}", flush=True)
    if site is None:
        print(f"{'Documentation':14} {site_note}", flush=True)
    print("Ctrl-C stops them all.", flush=True)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    # Ctrl-C too, explicitly: a process started from a background shell inherits SIGINT ignored,
    # and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, request_stop)
    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all(processes)
    print(f"stopped {', '.join(server.name for server in servers)}", flush=True)
    return 0
