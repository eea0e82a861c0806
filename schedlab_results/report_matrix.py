"""The report of many results (a gauntlet): per test, a matrix of preset x flag profile with
each cell's verdict and a link to its run's report; and the report of a comparison."""

from __future__ import annotations

import os
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

from .report_html import Raw, badge, link, page, section, table

__all__ = ("RUN_REPORT", "render_compare", "render_matrix")

RUN_REPORT = "report.html"


def _axes(side: dict[str, Any]) -> tuple[str, str, str]:
    """(group, preset, profile): gauntlet/<test>/<preset>/<profile>[/<kernel>] splits into
    its parts; any other test is its own group on its topology."""
    ident = side["identity"]
    parts = ident["test"].split("/")
    sched = ident["scheduler"]["name"]
    if parts[0] == "gauntlet" and len(parts) >= 4:
        group = "/".join([parts[1], *parts[4:]])
        return f"{group} on {sched}", parts[2], parts[3]
    topo = ident["topology"]
    return (
        f"{ident['test']} on {sched}",
        topo["preset"] or topo["spec"],
        ident["scheduler"]["profile"],
    )


def _cell(sides: list[dict[str, Any]], out_dir: Path) -> Raw:
    passed = sum(bool(s["run"]["passed"]) for s in sides)
    verdicts = {s["run"]["verdict"] for s in sides}
    status = "passed" if passed == len(sides) else ("error" if verdicts == {"error"} else "failed")
    text = status if len(sides) == 1 else f"{passed}/{len(sides)} passed"
    html = badge(status, text)
    for i, s in enumerate(sides):
        run_dir = s["run"].get("run_dir")
        if run_dir and (Path(run_dir) / RUN_REPORT).is_file():
            rel = os.path.relpath(Path(run_dir) / RUN_REPORT, out_dir)
            html += " " + link(rel, f"run {i + 1}" if len(sides) > 1 else "run").html
        reason = s["run"].get("reason")
        if reason and not s["run"]["passed"]:
            html += f"<br><span class='muted'>{escape(reason[:200])}</span>"
    return Raw(html)


def render_matrix(sides: list[dict[str, Any]], out_dir: Path, title: str) -> str:
    groups: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for s in sides:
        group, preset, profile = _axes(s)
        groups[group][(preset, profile)].append(s)
    total = len(sides)
    passed = sum(bool(s["run"]["passed"]) for s in sides)
    body = [
        f"<p>{badge('passed' if passed == total else 'failed', f'{passed}/{total} passed')}</p>"
    ]
    for group, cells in sorted(groups.items()):
        presets = sorted({p for p, _ in cells})
        profiles = sorted({q for _, q in cells})
        rows = []
        for p in presets:
            row: list[object] = [p]
            for q in profiles:
                row.append(
                    _cell(cells[(p, q)], out_dir) if (p, q) in cells else Raw(badge("missing", "-"))
                )
            rows.append(row)
        body.append(section(group, table(("preset \\ profile", *profiles), rows)))
    return page(title, body)


def render_compare(doc: dict[str, Any]) -> str:
    rows = []
    for r in doc["changes"]:
        rel = r.get("rel")
        worse = r.get("direction") == "regression"
        rows.append(
            (
                r.get("identity", ""),
                r.get("metric", "") + (f" ({r['unit']})" if r.get("unit") else ""),
                r.get("a"),
                r.get("b"),
                r.get("delta"),
                "new" if rel is None else f"{rel * 100:+.0f}%",
                Raw(badge("worse" if worse else "better")),
            )
        )
    n = int(doc.get("regressions", 0))
    head = badge("failed" if n else "passed", f"{n} regression(s)" if n else "no regression")
    body = [
        f"<p>{head} B = {escape(str(doc.get('b', '')))} against "
        f"A = {escape(str(doc.get('a', '')))}; "
        f"{doc.get('joined', 0)} identities joined</p>",
        section(
            "significant changes",
            table(("identity", "metric", "A", "B", "delta", "%", "direction"), rows)
            if rows
            else "<p class='muted'>no metric changed past its gates</p>",
        ),
    ]
    for label, key in (("only in A", "only_a"), ("only in B", "only_b")):
        if doc.get(key):
            body.append(section(label, table(("identity",), [(k,) for k in doc[key]])))
    return page("schedlab compare", body)
