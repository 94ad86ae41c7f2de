"""Data Docs assets: every CDN reference GX makes is vendored, and the site fetches nothing."""

from __future__ import annotations

import re
from pathlib import Path

import great_expectations
import pytest

from expectations.data_docs import (
    CDN_ASSETS,
    VENDOR_DIR,
    DataDocsAssetMissing,
    localize_assets,
)

GX_TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
_FETCHED = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(https://[^\"]+)\"")


def test_every_asset_the_installed_gx_templates_fetch_is_vendored():
    fetched = {
        url
        for template in GX_TEMPLATES.glob("*.j2")
        for url in _FETCHED.findall(template.read_text())
    }
    assert fetched, "GX templates moved: update the path above"
    assert fetched <= set(CDN_ASSETS), f"not vendored: {sorted(fetched - set(CDN_ASSETS))}"


def test_each_vendored_file_exists_beside_its_licence():
    for local in CDN_ASSETS.values():
        path = VENDOR_DIR / local
        assert path.is_file() and path.stat().st_size > 100, local
        package = VENDOR_DIR / Path(local).parts[0]
        assert any(package.glob("LICENSE*")), f"{package.name} has no licence file"
    font_css = (VENDOR_DIR / "fontawesome-free-6.6.0" / "css" / "all.min.css").read_text()
    for font in re.findall(r"url\(\.\./webfonts/([^)]+\.woff2)\)", font_css):
        assert (VENDOR_DIR / "fontawesome-free-6.6.0" / "webfonts" / font).is_file(), font


def _page(links: str) -> str:
    return f"<html><head>{links}</head><body><a href=\"https://greatexpectations.io\">GX</a></body></html>"


@pytest.fixture
def site(tmp_path):
    (tmp_path / "static" / "images").mkdir(parents=True)
    (tmp_path / "static" / "images" / "logo-long.png").write_bytes(b"png")
    (tmp_path / "static" / "styles").mkdir()
    return tmp_path


def test_cdn_references_are_rewritten_to_relative_local_copies(site):
    tags = "".join(
        f'<script src="{url}" integrity="sha384-x" crossorigin="anonymous"></script>'
        for url in CDN_ASSETS
    )
    logo = ('<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/'
            'logo-long.png?d=20240308">')
    deep = site / "validations" / "silver" / "rows" / "run" / "time"
    deep.mkdir(parents=True)
    (deep / "page.html").write_text(_page(tags + logo))
    (site / "static" / "styles" / "data_docs_default_styles.css").write_text(
        ".brand { background: url('https://great-expectations-web-assets.s3.us-east-2"
        ".amazonaws.com/full_logo_dark.png') }"
    )

    localize_assets(site)

    html = (deep / "page.html").read_text()
    assert "cdn" not in html and "unpkg" not in html and "integrity" not in html
    for reference in re.findall(r'(?:src|href)="([^"]+)"', html):
        if reference.startswith("https://greatexpectations.io"):
            continue  # a link the reader may follow, not something the page fetches
        assert (deep / reference).resolve().is_file(), reference
    css = (site / "static" / "styles" / "data_docs_default_styles.css").read_text()
    assert "url('../images/logo-long.png')" in css


def test_an_unknown_external_script_fails_the_build(site):
    (site / "index.html").write_text(_page('<script src="https://cdn.example.org/new.js"></script>'))

    with pytest.raises(DataDocsAssetMissing, match="cdn.example.org/new.js"):
        localize_assets(site)


def test_only_the_newest_runs_are_kept_in_the_store_and_the_site(tmp_path):
    from expectations.checkpoint import prune_history

    runs = [f"2024030{day}T150000000000Z-abc12{day}" for day in range(1, 6)]
    store, site = tmp_path / "gx" / "uncommitted" / "validations", tmp_path / "site"
    for run in runs:
        for suite_path in ("silver/silver_trades/rows", "gold/aggregates"):
            (store / suite_path / run / "20240308T150000.000000Z").mkdir(parents=True)
            (site / "validations" / suite_path / run).mkdir(parents=True)

    removed = prune_history(tmp_path / "gx", site, keep_runs=2)

    assert removed == runs[:3]
    left = {path.name for path in [*store.rglob("*"), *site.rglob("*")] if path.name in runs}
    assert left == set(runs[3:])
    assert (store / "gold" / "aggregates").is_dir()  # suite folders stay
