"""Data Docs that render offline: GX builds the site, we point its assets at local copies.

GX's page templates load Bootstrap, jQuery, Popper, bootstrap-table, the datepicker, Font
Awesome and Vega from CDNs, and its logo from a web bucket; with no network the pages render
unstyled. The exact files are vendored, with their licences, under `expectations/static/vendor/`
(see its README). After each build they are copied into `<site>/static/vendor/` and every CDN
reference in the site is rewritten to a relative path, so the site works from a file URL, copied
elsewhere, or served by any static server. A reference this module does not know (a newer GX
template) fails the build with `DataDocsAssetMissing` rather than shipping a page that needs
the internet.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

SITE_NAME = "tradewatch"
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
CUSTOM_STYLES = Path(__file__).resolve().parent / "static" / "data_docs_custom_styles.css"

# CDN URL (as GX 1.x templates write it) → file under static/vendor/.
CDN_ASSETS: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap-4.3.1/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap-4.3.1/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js-1.12.9/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table-1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table-1.19.1/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css":
        "bootstrap-dark-1.1.0/bootstrap-prefers-dark.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome-free-6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/vega-embed.min.js",
}
# GX's logo lives in a web bucket; the site's own static/images has the same pictures.
_WEB_ASSETS = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/"
    r"(?P<name>[A-Za-z0-9_.-]+)(?:\?[^\"')\s]*)?"
)
_LOGO_FALLBACK = "logo-long.png"
# Subresource integrity with crossorigin makes Chromium refuse file:// scripts (opaque origin).
_SRI = re.compile(r'\s+(?:integrity="[^"]*"|crossorigin="[^"]*")')
# Anything a page would fetch at view time: scripts, stylesheets, images, CSS url().
_EXTERNAL_FETCH = re.compile(
    r"<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*[\"'](?P<tag_url>https?://[^\"']+)"
    r"|url\(\s*[\"']?(?P<css_url>https?://[^\"')]+)",
    re.IGNORECASE,
)


class DataDocsAssetMissing(RuntimeError):
    """A built Data Docs page still fetches something from the internet."""


def site_config(site_dir: Path) -> dict[str, object]:
    """The GX Data Docs site: a local filesystem directory (absolute), the default index."""
    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(Path(site_dir).resolve()),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }


def configure_site(context: object, site_dir: Path) -> None:
    """Make `site_dir` the context's only Data Docs site, with our stylesheet inlined."""
    styles = Path(context.plugins_directory) / "custom_data_docs" / "styles"  # type: ignore[attr-defined]
    styles.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CUSTOM_STYLES, styles / "data_docs_custom_styles.css")
    sites = context.get_site_names()  # type: ignore[attr-defined]
    for name in sites:
        if name != SITE_NAME:
            context.delete_data_docs_site(name)  # type: ignore[attr-defined]
    if SITE_NAME in sites:
        context.update_data_docs_site(SITE_NAME, site_config(site_dir))  # type: ignore[attr-defined]
    else:
        context.add_data_docs_site(SITE_NAME, site_config(site_dir))  # type: ignore[attr-defined]


def build_data_docs(context: object, site_dir: Path,
                    resources: Sequence[object] | None = None) -> Path:
    """Render `resources` (suite and result identifiers) and the index; return index.html.

    Rendering every stored result on every run grows with the history; a site that already
    exists only gets the pages of this run (and the index, which lists every stored result).
    A new or emptied site is rendered whole.
    """
    site_dir = Path(site_dir)
    started = time.time()
    partial = resources is not None and (site_dir / "index.html").exists()
    context.build_data_docs(  # type: ignore[attr-defined]
        site_names=[SITE_NAME],
        resource_identifiers=list(resources) if partial and resources is not None else None,
    )
    localize_assets(site_dir, changed_since=started - 1 if partial else None)
    return site_dir / "index.html"


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _rewrite(text: str, static_prefix: str, images: set[str]) -> str:
    for url, local in CDN_ASSETS.items():
        text = text.replace(f'"{url}"', f'"{static_prefix}/vendor/{local}"')

    def web_asset(match: re.Match[str]) -> str:
        name = match.group("name")
        return f"{static_prefix}/images/{name if name in images else _LOGO_FALLBACK}"

    text = _WEB_ASSETS.sub(web_asset, text)
    return _SRI.sub("", text)


def localize_assets(site_dir: Path, changed_since: float | None = None) -> None:
    """Copy the vendored assets into the site and point pages and stylesheets at them.

    With `changed_since` (a Unix time), only files written since then are looked at.
    """
    site_dir = Path(site_dir)
    static = site_dir / "static"
    shutil.copytree(VENDOR_DIR, static / "vendor", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("README.md"))
    images = {path.name for path in (static / "images").glob("*")}
    leftovers: list[str] = []
    for page in sorted([*site_dir.rglob("*.html"), *(static / "styles").glob("*.css")]):
        if changed_since is not None and page.stat().st_mtime < changed_since:
            continue
        text = page.read_text(encoding="utf-8")
        rewritten = _rewrite(text, _relative(static, page.parent), images)
        if rewritten != text:
            page.write_text(rewritten, encoding="utf-8")
        for match in _EXTERNAL_FETCH.finditer(rewritten):
            url = match["tag_url"] or match["css_url"]
            leftovers.append(f"{page.relative_to(site_dir)}: {url}")
    if leftovers:
        raise DataDocsAssetMissing(
            f"Data Docs still fetch {len(leftovers)} asset(s) from the internet, first "
            f"{leftovers[0]}; vendor it under {VENDOR_DIR} and map it in CDN_ASSETS"
        )
