"""The HTML report looked at as a person would: headless Chromium renders each kind of
report (a run, a gauntlet matrix, a comparison) to a screenshot that is not blank, and the
page names nothing outside itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schedlab_results import compare_doc, sidecar
from schedlab_results.compare import compare
from schedlab_results.policy import gates
from schedlab_results.report import write_report
from tests.framework.browser import external_references, pixel_stats, screenshot
from tests.framework.recorded_results import gauntlet, load_fixture, slowed, write_run


def _page(kind: str, tmp: Path) -> Path:
    doc = load_fixture()
    if kind == "run":
        return write_report(write_run(tmp, doc, "run"))[0]
    if kind == "gauntlet":
        return write_report(
            gauntlet(tmp, ("tiny-1llc", "tiny-2llc", "smt-2llc"), ("default", "llc"))
        )[0]
    a = [sidecar.build(doc, "t", project_commit="a", host="h")]
    b = [sidecar.build(slowed(doc, 2.0, "s"), "t", project_commit="b", host="h")]
    saved = tmp / "compare.json"
    saved.write_text(json.dumps(compare_doc.to_doc(compare(a, b, gates()), "a", "b")))
    return write_report(saved)[0]


@pytest.mark.parametrize("kind", ["run", "gauntlet", "compare"])
def test_the_report_renders_in_headless_chromium(tmp_path: Path, kind: str) -> None:
    page = _page(kind, tmp_path)
    assert external_references(page.read_text()) == []
    png = screenshot(page, tmp_path / f"{kind}.png")
    std, inked = pixel_stats(png)
    # a blank or unstyled-error page is one flat colour; a report has text, tables, plots
    assert std > 10 and inked > 0.01, (std, inked)


def test_a_blank_page_would_fail_the_check(tmp_path: Path) -> None:
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    std, inked = pixel_stats(screenshot(blank, tmp_path / "blank.png"))
    assert std < 1 and inked < 0.001


def test_the_reference_check_finds_what_a_browser_would_fetch() -> None:
    page = (
        "<img src='https://cdn.example/x.png'><link href='//fonts.example/f.css'>"
        "<style>body{background:url(/etc/x.png)}@import 'a.css';</style>"
        "<a href='#top'>ok</a><a href='../runs/r1/report.html'>ok</a>"
    )
    found = external_references(page)
    assert len(found) == 5, found
