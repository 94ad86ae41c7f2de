"""Screenshot of the Data Docs in headless Chromium with every network request refused.

    python bench/quality/screenshot.py [--home PATH] [--no-validate] [--as-of ISO-TIME]

Validates the warehouse of the data home (TRADEWATCH_HOME, or --home; `tradewatch demo` or
`tradewatch transform` builds one) so the Data Docs are current, then opens the Data Docs index
and the newest validation page of the silver rows suite from file:// URLs in headless Chromium
— with DNS resolving nothing, so a page that needed a CDN would show it — and writes
<home>/reports/screenshots/data-docs-*.png. Then checks each shot is styled: Font Awesome's
status icons and Bootstrap's tables only draw their colours when the vendored CSS and fonts load.

Needs the Debian package `chromium`; exits non-zero with one line when it is missing, when the
home has no warehouse, or when a page renders blank or unstyled.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flows.config import ConfigError, load_settings  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1400, 1000)
SHOT_TIMEOUT_S = 120
# Font Awesome draws the status icons in Bootstrap's green (#28a745) and red (#dc3545); with
# the CSS or fonts missing the page is black text on white.
SUCCESS_GREEN = (40, 167, 69)
MIN_STYLED_PIXELS = 50


class ScreenshotFailed(RuntimeError):
    """A page could not be shot, or rendered blank or unstyled."""


def chromium_path() -> str:
    """The Chromium binary, or ScreenshotFailed saying how to install it."""
    found = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if found is None:
        raise ScreenshotFailed(
            f"{CHROMIUM} not found: install it with `apt-get update && apt-get install -y chromium`"
        )
    return found


def shoot(chromium: str, page: Path, target: Path) -> Path:
    """Shoot `page` (a local HTML file) into `target` with no network at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tradewatch-chromium-") as profile:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
            # Every host name resolves to nothing: a CDN reference left in a page fails to load.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={target}", page.resolve().as_uri(),
        ]
        try:
            completed = subprocess.run(command, capture_output=True, text=True,
                                       timeout=SHOT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ScreenshotFailed(f"{page.name}: Chromium did not finish in "
                                   f"{SHOT_TIMEOUT_S}s") from exc
    if not target.exists():
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScreenshotFailed(f"{page.name}: Chromium wrote no screenshot ({tail})")
    return target


def styled_pixels(png: Path) -> int:
    """How many pixels carry Bootstrap's success green (the status icons)."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        return sum(
            count for count, colour in rgb.getcolors(maxcolors=1 << 24)
            if all(abs(a - b) <= 12 for a, b in zip(colour, SUCCESS_GREEN, strict=True))
        )


def newest_validation_page(site: Path, suite_path: str) -> Path:
    """The newest rendered validation result of one suite (e.g. silver/silver_trades/rows)."""
    pages = sorted((site / "validations" / suite_path).rglob("*.html"))
    if not pages:
        raise ScreenshotFailed(f"no validation page under {site / 'validations' / suite_path}")
    return pages[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="data home (default: TRADEWATCH_HOME or data/)")
    parser.add_argument("--no-validate", action="store_true",
                        help="shoot the Data Docs as they are, without validating first")
    parser.add_argument("--as-of", type=datetime.fromisoformat, metavar="ISO-TIME",
                        help="judge freshness against this time (a replayed market's clock)")
    args = parser.parse_args(argv)
    try:
        chromium = chromium_path()
        environ = dict(os.environ)
        if args.home:
            environ["TRADEWATCH_HOME"] = str(args.home.resolve())
        settings = load_settings(environ=environ)
        if not args.no_validate:
            from flows.validate import run_validate

            run_validate(settings, reference_time=args.as_of)
        site = settings.paths.data_docs
        index = site / "index.html"
        if not index.exists():
            raise ScreenshotFailed(f"no Data Docs at {index}: run `tradewatch validate` first")
        shots = settings.paths.reports / "screenshots"
        pages = {
            "data-docs-index": index,
            "data-docs-silver-rows": newest_validation_page(site, "silver/silver_trades/rows"),
        }
        for name, page in pages.items():
            png = shoot(chromium, page, shots / f"{name}.png")
            styled = styled_pixels(png)
            if styled < MIN_STYLED_PIXELS:
                raise ScreenshotFailed(
                    f"{name}: rendered unstyled ({styled} status-icon pixels) — are the "
                    f"vendored assets in {site / 'static' / 'vendor'}?"
                )
            print(f"{name}: {png} ({styled} status-icon pixels)")
    except (ScreenshotFailed, ConfigError) as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a failed validation or a missing warehouse: one line
        print(f"screenshot: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
