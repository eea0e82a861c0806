"""The report's plots: matplotlib figures rendered to inline SVG (no file, no network).

The SVG's XML prolog and namespace declarations are dropped: inside HTML the parser knows
SVG, and the page must name nothing outside itself (not even a namespace URL).
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("svg")  # no display, no GUI toolkit: the backend that writes SVG text

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ("cpu_timelines", "event_rates", "svg", "worker_bars")

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True})
_LINES_UP_TO = 8  # CPUs drawn as lines; more become a heat map (one row per CPU)


def svg(fig: Figure, salt: str) -> str:
    """``fig`` as an ``<svg>`` element for inline use; ``salt`` keeps element ids apart
    between the figures of one page."""
    plt.rcParams["svg.hashsalt"] = salt
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text, count=3)
    text = re.sub(
        r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="plot"', text, count=1
    )
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _seconds(samples: list[dict[str, Any]]) -> list[float]:
    t0 = samples[0]["elapsed_ms"]
    return [(s["elapsed_ms"] - t0) / 1000 for s in samples]


def _series(samples: list[dict[str, Any]], field: str) -> dict[int, list[float]]:
    """Per CPU, the field's value at each sample (NaN where a sample lacks the CPU)."""
    cpus = sorted({c["cpu"] for s in samples for c in s["cpus"]})
    out: dict[int, list[float]] = {c: [] for c in cpus}
    for s in samples:
        row = {c["cpu"]: c.get(field) for c in s["cpus"]}
        for c in cpus:
            v = row.get(c)
            out[c].append(float("nan") if v is None else float(v))
    return out


def cpu_timelines(samples: list[dict[str, Any]]) -> Figure:
    """nr_running and local DSQ depth of every CPU over the run (lines, or heat maps for
    many CPUs)."""
    t = _seconds(samples)
    fields = (("nr_running", "nr_running"), ("local_dsq_nr", "local DSQ depth"))
    ncpu = len({c["cpu"] for s in samples for c in s["cpus"]})
    fig, axes = plt.subplots(len(fields), 1, figsize=(9, 2.2 * len(fields)), sharex=True)
    for ax, (field, label) in zip(axes, fields, strict=True):
        series = _series(samples, field)
        if ncpu <= _LINES_UP_TO:
            for cpu, ys in series.items():
                ax.step(t, ys, where="post", label=f"CPU {cpu}", linewidth=1.2)
            ax.legend(loc="upper right", fontsize=7, ncols=min(ncpu, 4))
            ax.set_ylim(
                bottom=0, top=max(1.0, max((max(v) for v in series.values()), default=1)) * 1.15
            )
        else:
            img = ax.imshow(
                list(series.values()),
                aspect="auto",
                interpolation="nearest",
                extent=(t[0], t[-1] if len(t) > 1 else 1, ncpu - 0.5, -0.5),
                cmap="viridis",
            )
            fig.colorbar(img, ax=ax, pad=0.01)
            ax.grid(False)
            ax.set_ylabel("CPU")
        ax.set_title(f"{label} per CPU", loc="left")
    axes[-1].set_xlabel("seconds since the first monitor sample")
    axes[-1].set_xlim(0, t[-1] or 1)
    return fig


def event_rates(samples: list[dict[str, Any]]) -> Figure | None:
    """sched_ext event counters per second (system-wide), or None when no sample had them."""
    with_ev = [s for s in samples if (s.get("scx") or {}).get("events")]
    if len(with_ev) < 2:
        return None
    t0 = samples[0]["elapsed_ms"]
    names = sorted({n for s in with_ev for n in s["scx"]["events"]} - {"SCX_EV_BYPASS_DURATION"})
    rates: dict[str, list[float]] = {n: [] for n in names}
    ts: list[float] = []
    for prev, cur in zip(with_ev, with_ev[1:], strict=False):
        dt = (cur["elapsed_ms"] - prev["elapsed_ms"]) / 1000
        if dt <= 0:
            continue
        ts.append((cur["elapsed_ms"] - t0) / 1000)
        for n in names:
            a, b = prev["scx"]["events"].get(n, 0), cur["scx"]["events"].get(n, 0)
            rates[n].append(max(0.0, (b - a) / dt))
    fig, ax = plt.subplots(figsize=(9, 2.4))
    shown = [n for n in names if any(rates[n])]
    for n in shown:
        ax.plot(ts, rates[n], label=n.removeprefix("SCX_EV_").lower(), linewidth=1.2)
    if shown:
        ax.legend(loc="upper right", fontsize=7, ncols=2)
    else:
        ax.text(
            0.5,
            0.5,
            "every sched_ext event counter stayed at 0",
            ha="center",
            transform=ax.transAxes,
        )
    ax.set_xlim(0, max(ts[-1] if ts else 1, (samples[-1]["elapsed_ms"] - t0) / 1000))
    ax.set_title("sched_ext events per second (all CPUs)", loc="left")
    ax.set_xlabel("seconds since the first monitor sample")
    return fig


def worker_bars(workers: list[dict[str, Any]], wake_p99_us: dict[int, float]) -> Figure:
    """Per worker: work units, longest scheduling gap, wake latency p99 (when measured)."""
    labels = [f"{w.get('cgroup', '')}/{w.get('pid', '?')}" for w in workers]
    panels = [
        ("work units", [w.get("work_units", 0) for w in workers]),
        ("longest gap (ms)", [w.get("max_gap_ms", 0.0) for w in workers]),
        ("wake latency p99 (µs)", [wake_p99_us.get(w.get("pid", -1), 0.0) for w in workers]),
    ]
    height = max(2.0, 0.28 * len(workers) + 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(10, height), sharey=True)
    for ax, (title, values) in zip(axes, panels, strict=True):
        ax.barh(range(len(values)), values, color="#4477aa")
        ax.set_title(title, loc="left")
        ax.invert_yaxis()
        if title.startswith("wake") and not wake_p99_us:
            ax.set_xticks([])
            ax.text(
                0.5,
                0.5,
                "not measured\n(no wake-latency work type)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
    axes[0].set_yticks(range(len(labels)), labels, fontsize=7)
    return fig
