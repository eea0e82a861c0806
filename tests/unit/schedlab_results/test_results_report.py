"""The HTML report's content: a run's verdict, plots (inline SVG from matplotlib), workers
and scheduler log; a gauntlet's preset x profile matrix with links; a comparison's table;
one line and exit 2 for a path with nothing to report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schedlab_results import compare_doc, sidecar
from schedlab_results.compare import compare
from schedlab_results.policy import gates
from schedlab_results.report import ReportError, write_report
from tests.framework.browser import external_references
from tests.framework.recorded_results import gauntlet, slowed, write_run

ROOT = Path(__file__).resolve().parents[3]


def test_a_run_report_shows_verdict_timelines_workers_and_log(
    tmp_path: Path, eevdf_doc: dict[str, Any]
) -> None:
    doc = dict(eevdf_doc, scheduler=dict(eevdf_doc["scheduler"], log="sched.log"))
    run = write_run(tmp_path, doc, "run")
    (run / "sched.log").write_text("".join(f"line {i} <b>\n" for i in range(100)))
    (path,) = write_report(run)
    html = path.read_text()
    assert path == run / "report.html"
    assert "passed" in html and "starvation" in html and "every worker progressed" in html
    assert html.count("<svg") == 2  # CPU timelines, worker bars (EEVDF: no event counters)
    assert "nr_running per CPU" in html and "local DSQ depth per CPU" in html
    assert "work units" in html and "longest gap" in html and "wake latency p99" in html
    assert "line 99 &lt;b&gt;" in html and "line 59 " not in html  # the tail, escaped
    assert external_references(html) == []


def test_a_gauntlet_report_is_a_matrix_linking_each_run(tmp_path: Path) -> None:
    sides = gauntlet(tmp_path, ("tiny-1llc", "tiny-2llc", "smt-2llc"), ("default", "llc"))
    written = write_report(sides)
    html = written[0].read_text()
    assert written[0] == sides / "report.html" and len(written) == 1 + 6
    assert "steady on eevdf" in html and "preset \\ profile" in html
    for preset in ("tiny-1llc", "tiny-2llc", "smt-2llc"):
        assert f"<td>{preset}</td>" in html
    assert html.count("href='../runs/g") == 6 and "5/6 passed" in html
    assert "cg_1 starved" in html
    assert all((tmp_path / "runs" / f"g{i}" / "report.html").is_file() for i in range(6))
    assert external_references(html) == []


def test_a_comparison_report_is_its_table(tmp_path: Path, eevdf_doc: dict[str, Any]) -> None:
    a = [sidecar.build(eevdf_doc, "t", project_commit="a", host="h")]
    b = [sidecar.build(slowed(eevdf_doc, 2.0, "s"), "t", project_commit="b", host="h")]
    doc = compare_doc.to_doc(compare(a, b, gates()), "base", "slow")
    saved = tmp_path / "compare.json"
    saved.write_text(json.dumps(doc))
    (path,) = write_report(saved)
    html = path.read_text()
    assert "total_iterations" in html and "worse" in html and "regression(s)" in html
    assert external_references(html) == []


def test_nothing_to_report_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="holds no sidecar"):
        write_report(tmp_path)
    with pytest.raises(ReportError, match="no such run directory"):
        write_report(tmp_path / "nope")


def test_the_cli_writes_the_report_or_says_why_not_in_one_line(
    tmp_path: Path, eevdf_doc: dict[str, Any]
) -> None:
    run = write_run(tmp_path, eevdf_doc, "run")
    cmd = [sys.executable, "-m", "orchestrator.cli", "report"]
    ok = subprocess.run([*cmd, str(run)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.strip() == str(run / "report.html")
    (run / "result.json").write_text("{not json")
    bad = subprocess.run([*cmd, str(run)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "result.json" in bad.stderr and "Traceback" not in bad.stderr


def test_many_cpus_become_heat_maps_inside_the_page(
    tmp_path: Path, eevdf_doc: dict[str, Any]
) -> None:
    run = write_run(tmp_path, eevdf_doc, "run")
    lines = []
    for i in range(40):  # a 64-CPU guest's samples
        cpus = [
            {"cpu": c, "nr_running": (c + i) % 4, "rq_clock": 1000 * i, "local_dsq_nr": c % 3}
            for c in range(64)
        ]
        lines.append(json.dumps({"elapsed_ms": 100.0 * i, "cpus": cpus}))
    (run / "monitor-monitor.jsonl").write_text("\n".join(lines) + "\n")
    html = write_report(run)[0].read_text()
    assert "40 monitor samples" in html
    assert html.count("data:image/png;base64,") >= 2  # nr_running and DSQ depth rasters
    assert external_references(html) == []  # a data: URI is inside the page
