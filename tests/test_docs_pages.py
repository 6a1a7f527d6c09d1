"""docs/pages/ holds a screenshot of every page at phone and desktop size, and its README shows
them (issue 16 item 6). The screenshots come from tests/test_a11y_pages.py
(``VIGIL_UPDATE_SCREENSHOTS=1``); this check needs no browser, so it runs everywhere. Pixels
are not compared: a page that changes is regenerated, a page that is missing fails here."""

from __future__ import annotations

from .a11y_tour import DOCS_PAGES, PAGES, SIZES, png_size

EXPECTED = {f"{name}-{size}.png" for name in PAGES for size in SIZES}


def test_every_page_has_a_screenshot_at_each_size() -> None:
    present = {path.name for path in DOCS_PAGES.glob("*.png")}
    assert sorted(EXPECTED - present) == [], "missing: run VIGIL_UPDATE_SCREENSHOTS=1 on tests/test_a11y_pages.py"
    assert sorted(present - EXPECTED) == [], "screenshots of pages the test no longer visits"


def test_each_screenshot_has_its_size_width() -> None:
    for name in sorted(EXPECTED):
        width, height = png_size(DOCS_PAGES / name)
        size = name.removesuffix(".png").rsplit("-", 1)[1]
        assert (width, height >= SIZES[size][1]) == (SIZES[size][0], True), name


def test_the_readme_shows_every_screenshot() -> None:
    readme = (DOCS_PAGES / "README.md").read_text()
    assert [name for name in sorted(EXPECTED) if f'"{name}"' not in readme and f"({name})" not in readme] == []
