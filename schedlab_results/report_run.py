"""The report of one run: identity, verdict with its evidence, per-CPU timelines from the
monitor samples, per-worker bars, the scheduler log's tail."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from schedlab_shared import run_layout
from schedlab_shared.monitor_schema import SchemaError, check_sample

from . import report_plots as plots
from . import result_doc, sidecar
from .report_html import Raw, badge, page, pre, section, table

__all__ = ("render_run",)

MAX_SAMPLE_LINES = 50_000  # per monitor file: a long run at 10 Hz is ~1.4 h
MAX_SAMPLE_BYTES = 256 << 20
LOG_TAIL_LINES = 40
_TAIL_BYTES = 64 << 10  # the log is the scheduler's output: read a bounded tail


def _raw_samples(run_dir: Path) -> list[dict[str, Any]]:
    """The primary monitor's sample lines (they carry the sched_ext event counters); lines
    that do not match the sample schema are skipped."""
    files = run_layout.monitor_files(run_dir)
    path = files.get("monitor") or next(iter(files.values()), None)
    if path is None:
        return []
    out: list[dict[str, Any]] = []
    read = 0
    with open(path, "rb") as f:
        for line in f:
            read += len(line)
            if read > MAX_SAMPLE_BYTES or len(out) >= MAX_SAMPLE_LINES:
                break
            try:
                out.append(check_sample(json.loads(line)))
            except (ValueError, SchemaError):
                continue
    return out


def _tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - _TAIL_BYTES))
            data = f.read()
    except OSError:
        return []
    return [ln.decode(errors="replace") for ln in data.splitlines()[-n:]]


def _identity(run_dir: Path, doc: dict[str, Any]) -> dict[str, Any]:
    for p in sorted(run_dir.glob(f"*{sidecar.SUFFIX}")):
        try:
            return sidecar.read(p)["identity"]
        except sidecar.SidecarError:
            continue
    return sidecar.build(doc, sidecar.run_test_name(doc), project_commit="unknown")["identity"]


def _identity_table(ident: dict[str, Any], doc: dict[str, Any]) -> str:
    s, t = ident["scheduler"], ident["topology"]
    rows = [
        ("test", ident["test"]),
        ("scheduler", f"{s['name']} {' '.join(s['args'])}".strip()),
        ("flag profile", s["profile"]),
        ("kernel", ident["kernel"]["version"]),
        ("topology", f"{t['preset'] or ''} {t['spec']} ({t['cpus']} CPUs)".strip()),
        ("engine", ident["engine"]),
        ("schedlab commit", ident["project_commit"]),
        ("host", ident["host"]),
        ("run", doc.get("run_id", "")),
    ]
    return table(("field", "value"), rows)


def _verdict(doc: dict[str, Any]) -> list[str]:
    parts = [f"<p>{badge(doc['verdict'])} {escape(str(doc.get('reason', '')))}</p>"]
    reasons = doc.get("reasons") or []
    if len(reasons) > 1:
        parts.append(table(("all reasons",), [(r,) for r in reasons]))
    checks = ((doc.get("guest") or {}).get("result") or {}).get("verdicts") or []
    if checks:
        rows: list[tuple[object, ...]] = [
            (
                c.get("name", ""),
                Raw(badge("passed" if c.get("passed") else "failed")),
                c.get("detail", ""),
            )
            for c in checks
        ]
        parts.append(table(("guest check", "", "detail"), rows))
    mon = doc.get("monitor") or {}
    if mon:
        ok = mon.get("ok")
        status = mon.get("verdict") or ("missing" if ok is None else "passed" if ok else "failed")
        reason = str(mon.get("reason", "")).removeprefix("monitor: ")
        parts.append(f"<p>monitor: {badge(status)} {escape(reason)}</p>")
    viol = mon.get("violations") or []
    if viol:
        rows = [
            (
                v.get("check"),
                v.get("cpu"),
                v.get("at_ms"),
                v.get("value"),
                v.get("limit"),
                v.get("detail", ""),
            )
            for v in viol[:50]
        ]
        parts.append(table(("violation", "CPU", "at ms", "value", "limit", "detail"), rows))
    sched_exit = (doc.get("scheduler") or {}).get("exit")
    if sched_exit:
        parts.append(table(("scheduler exit", ""), [(k, str(v)) for k, v in sched_exit.items()]))
    for name, lines in (doc.get("evidence") or {}).items():
        if lines and name != "console_tail":
            parts.append(f"<p>evidence: {name}</p>" + pre(lines[-60:]))
    return parts


def _wake_p99(doc: dict[str, Any]) -> dict[int, float]:
    out: dict[int, float] = {}
    for step in (doc.get("scenario") or {}).get("steps") or []:
        for seg in step.get("workers", []):
            if seg.get("wake_p99_ns") is not None:
                out[seg["pid"]] = max(out.get(seg["pid"], 0.0), seg["wake_p99_ns"] / 1000)
    return out


def render_run(run_dir: Path) -> str:
    """The HTML report of the run in ``run_dir``.

    :raises result_doc.ResultError: no readable, valid result.json.
    """
    doc = result_doc.load(run_dir)
    ident = _identity(run_dir, doc)
    body = [section("identity", _identity_table(ident, doc)), section("verdict", *_verdict(doc))]
    samples = _raw_samples(run_dir) or (doc.get("monitor") or {}).get("samples") or []
    if samples:
        figs = [plots.svg(plots.cpu_timelines(samples), "cpus")]
        ev = plots.event_rates(samples)
        if ev is not None:
            figs.append(plots.svg(ev, "events"))
        body.append(section(f"per-CPU timelines ({len(samples)} monitor samples)", *figs))
    else:
        body.append(section("per-CPU timelines", "<p class='muted'>no monitor samples</p>"))
    workers = doc.get("workers") or []
    if workers:
        body.append(
            section("workers", plots.svg(plots.worker_bars(workers, _wake_p99(doc)), "workers"))
        )
    log = (doc.get("scheduler") or {}).get("log")
    if log:
        lines = _tail(run_dir / Path(log).name, LOG_TAIL_LINES)  # a name in the run dir only
        body.append(section(f"scheduler log (last {len(lines)} lines)", pre(lines)))
    return page(f"schedlab run {doc.get('run_id', '')}: {ident['test']}", body)
