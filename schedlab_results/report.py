"""``schedlab report PATH``: one self-contained HTML file for a run, a directory of runs or
sidecars (a gauntlet: each run also gets its own report, linked from the matrix), or a
saved comparison."""

from __future__ import annotations

import os
from pathlib import Path

from . import compare_doc, result_doc, sidecar
from .report_matrix import RUN_REPORT, render_compare, render_matrix
from .report_run import render_run

__all__ = ("ReportError", "write_report")


class ReportError(ValueError):
    """Nothing to report on at that path, or a bad input there (one line)."""


def _write(path: Path, html: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html)
    os.replace(tmp, path)
    return path


def _kind(path: Path) -> str:
    if path.is_file():
        if path.name == result_doc.RESULT_FILE:
            return "run"
        return "sidecars" if path.name.endswith(sidecar.SUFFIX) else "compare"
    if (path / compare_doc.COMPARE_FILE).is_file():
        return "compare"
    if (path / result_doc.RESULT_FILE).is_file():
        return "run"
    return "sidecars"


def write_report(path: Path, out: Path | None = None) -> list[Path]:
    """Write the report of ``path``; return the files written (the main one first).

    :raises ReportError: nothing readable to report on.
    """
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: no such run directory, sidecar directory or comparison")
    kind = _kind(path)
    base = path if path.is_dir() else path.parent
    try:
        if kind == "run":
            run_dir = base
            return [_write(out or run_dir / RUN_REPORT, render_run(run_dir))]
        if kind == "compare":
            doc = compare_doc.load(path)
            return [_write(out or base / "compare.html", render_compare(doc))]
        sides = sidecar.discover(path)
        written = []
        for run_dir in sorted({s["run"]["run_dir"] for s in sides if s["run"]["run_dir"]}):
            if (Path(run_dir) / result_doc.RESULT_FILE).is_file():
                written.append(_write(Path(run_dir) / RUN_REPORT, render_run(Path(run_dir))))
        main = out or base / RUN_REPORT
        html = render_matrix(sides, main.parent, f"schedlab results: {path.name}")
        return [_write(main, html), *written]
    except (result_doc.ResultError, sidecar.SidecarError) as e:
        raise ReportError(str(e)) from None
    except OSError as e:
        raise ReportError(f"{e.filename or path}: {e.strerror or e}") from None
