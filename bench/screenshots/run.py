"""Screenshots of the Prefect UI and the HTML reports in headless Chromium (a script, not a test).

    python bench/screenshots/run.py [--home PATH] [--no-prefect]

1. Renders the monitoring report of the data home (TRADEWATCH_HOME, or --home) and picks up the
   newest drift report and the Data Docs index when they exist.
2. Starts `prefect server start` on a free port of 127.0.0.1 and waits for /api/health.
3. Shoots every page with headless Chromium into <home>/reports/screenshots/*.png (report pages
   from file:// URLs), stops the server's whole process group and prints where each shot went.

Needs the Debian package `chromium`. Exits non-zero with one line when it is missing, when the
server does not come up, or when a page cannot be shot (a blank page counts as not shot).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flows.config import ConfigError, Settings, load_settings  # noqa: E402
from flows.report import run_report  # noqa: E402
from flows.ui import QUIET_ENV, UiFailed, start_all, stop_all, ui_servers  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1400, 1000)
#: The monitoring report is long: one more shot of the whole page, at this height.
FULL_PAGE_HEIGHT = 5200
#: Prefect's UI is a JavaScript app: let it fetch and render before the shot.
JS_BUDGET_MS = 10_000
SHOT_TIMEOUT_S = 120


class ScreenshotFailed(RuntimeError):
    """A page could not be shot."""


@dataclass(frozen=True)
class Page:
    """One page to shoot."""

    name: str
    url: str
    height: int = WINDOW[1]
    javascript_app: bool = False


def chromium_path() -> str:
    """The Chromium binary, or exit with one line saying how to install it."""
    found = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if found is None:
        sys.exit(
            f"screenshots: {CHROMIUM} not found: install it with "
            "`apt-get update && apt-get install -y chromium`"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def report_pages(settings: Settings) -> list[Page]:
    """The monitoring report (rendered now), the newest drift report and Data Docs if present."""
    monitoring = run_report(settings).resolve()
    pages = [
        Page("monitoring-report", monitoring.as_uri()),
        Page("monitoring-report-full", monitoring.as_uri(), height=FULL_PAGE_HEIGHT),
    ]
    drift_pages = sorted(
        (p for p in (settings.paths.drift_reports).glob("drift-*.html")),
        key=lambda p: (p.stat().st_mtime, p.name),
    )
    if drift_pages:
        pages.append(Page("drift-report", drift_pages[-1].resolve().as_uri()))
    else:
        print("screenshots: no drift report yet (run `tradewatch drift`): skipped", flush=True)
    docs = settings.paths.data_docs / "index.html"
    if docs.exists():
        pages.append(Page("data-docs", docs.resolve().as_uri()))
    else:
        print("screenshots: no Data Docs yet (run `tradewatch validate`): skipped", flush=True)
    return pages


def shoot(chromium: str, page: Page, target: Path) -> Path:
    """One headless Chromium run that writes `target`; ScreenshotFailed if it did not."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tradewatch-chromium-") as profile:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
            # No name resolves: a page that reached for the internet would show it, not hang.
            # The Prefect server on 127.0.0.1 stays reachable.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
            f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{page.height}",
            f"--screenshot={target}",
        ]
        if page.javascript_app:
            command.append(f"--virtual-time-budget={JS_BUDGET_MS}")
        command.append(page.url)
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=SHOT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise ScreenshotFailed(
                f"{page.name}: Chromium did not finish within {SHOT_TIMEOUT_S} s"
            ) from None
    if process.returncode != 0 or not target.exists():
        lines = output.decode(errors="replace").strip().splitlines() or ["no output"]
        reason = next((line for line in lines if "Page load failed" in line), lines[-1])
        raise ScreenshotFailed(
            f"{page.name}: no screenshot (Chromium exit code {process.returncode}): {reason}"
        )
    if looks_blank(target):
        raise ScreenshotFailed(f"{page.name}: the page rendered blank ({target})")
    return target


def looks_blank(png: Path) -> bool:
    """True when the shot is (nearly) one colour: the page did not render."""
    from PIL import Image

    with Image.open(png) as image:
        colours = image.convert("RGB").resize((140, 100)).getcolors(maxcolors=100_000)
    return colours is not None and len(colours) < 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="data home (default: TRADEWATCH_HOME or data/)")
    parser.add_argument("--no-prefect", action="store_true", help="shoot the reports only")
    args = parser.parse_args(argv)
    chromium = chromium_path()
    os.environ.update(QUIET_ENV)
    environ = dict(os.environ)
    if args.home is not None:
        environ["TRADEWATCH_HOME"] = str(args.home.resolve())
    try:
        settings = load_settings(environ=environ)
    except ConfigError as exc:
        sys.exit(f"screenshots: {exc}")
    shots = settings.paths.reports / "screenshots"
    pages = report_pages(settings)
    processes: list[subprocess.Popen] = []
    written: list[tuple[Page, Path]] = []
    failures: list[str] = []
    try:
        if not args.no_prefect:
            port = free_port()
            server = ui_servers(settings, prefect_port=port)[0]
            # The UI finds its API from settings, not from --port: without this it calls
            # 127.0.0.1:4200 and renders an error.
            os.environ["PREFECT_UI_API_URL"] = f"{server.url}/api"
            started = time.monotonic()
            try:
                processes = start_all([server], settings, timeout=120)
            except UiFailed as exc:
                sys.exit(f"screenshots: {exc}")
            print(f"screenshots: Prefect server healthy at {server.url} after "
                  f"{time.monotonic() - started:.1f} s", flush=True)
            pages = [
                Page("prefect-dashboard", f"{server.url}/dashboard", javascript_app=True),
                Page("prefect-runs", f"{server.url}/runs", javascript_app=True),
                Page("prefect-deployments", f"{server.url}/deployments", javascript_app=True),
                *pages,
            ]
        for page in pages:
            try:
                written.append((page, shoot(chromium, page, shots / f"{page.name}.png")))
            except ScreenshotFailed as exc:
                failures.append(str(exc))
    finally:
        stop_all(processes)
    for page, path in written:
        print(f"{page.name:24} {path}   ({page.url})")
    for failure in failures:
        print(f"screenshots: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
