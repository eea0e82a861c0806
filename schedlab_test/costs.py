"""What a VM run costs in wall seconds: a model calibrated from measured runs.

The model is ``boot + per_cpu * cpus + stretch * duration``. Its defaults were measured on a
2-core QEMU TCG host (a 2-CPU steady run of 1 s took about 12 s, most of it boot); every
finished run adds its measured wall time to ``<cache>/gauntlet-times.json``, and once there
are enough points of different sizes the coefficients are refitted (least squares). A
variant measured before costs its own mean.

Sharding uses :data:`STATIC` (never the cache) so every host of a CI matrix agrees.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedlab_shared.cache import cache_root

__all__ = ("STATIC", "CostModel", "TimesStore", "fit")

_KEEP = 8  # measurements kept per variant id
_MAX_IDS = 5000


@dataclass(frozen=True)
class CostModel:
    """Seconds a run takes: ``boot + per_cpu * cpus + stretch * duration``, or the
    measured mean of the same run id."""

    boot_s: float = 10.0
    per_cpu_s: float = 0.8
    stretch: float = 1.5
    known: dict[str, float] = field(default_factory=dict, compare=False)

    def estimate(self, cpus: int, duration_s: float, run_id: str = "") -> float:
        if run_id in self.known:
            return self.known[run_id]
        return max(1.0, self.boot_s + self.per_cpu_s * cpus + self.stretch * duration_s)


#: The uncalibrated model (what sharding uses: the same on every host).
STATIC = CostModel()


def fit(points: Iterable[tuple[int, float, float]], base: CostModel = STATIC) -> CostModel:
    """Refit ``(cpus, duration_s, wall_s)`` points by least squares; ``base`` where the points
    do not tell (one size only: ``per_cpu_s`` stays; one duration only: ``stretch`` stays).
    """
    pts = [(float(c), float(d), float(w)) for c, d, w in points]
    if not pts:
        return base
    sizes, durations = {c for c, _, _ in pts}, {d for _, d, _ in pts}
    per_cpu, stretch = base.per_cpu_s, base.stretch
    if len(sizes) > 1 and len(durations) > 1 and len(pts) >= 3:
        sol = _lstsq([[1.0, c, d] for c, d, _ in pts], [w for _, _, w in pts])
        if sol is not None and sol[1] >= 0 and sol[2] >= 0:
            return CostModel(max(0.0, sol[0]), sol[1], sol[2], base.known)
    if len(sizes) > 1:
        sol = _lstsq([[1.0, c] for c, _, _ in pts], [w - stretch * d for c, d, w in pts])
        if sol is not None and sol[1] >= 0:
            return CostModel(max(0.0, sol[0]), sol[1], stretch, base.known)
    boot = sum(w - per_cpu * c - stretch * d for c, d, w in pts) / len(pts)
    return CostModel(max(0.0, boot), per_cpu, stretch, base.known)


def _lstsq(rows: list[list[float]], rhs: list[float]) -> list[float] | None:
    """Least squares through the normal equations (None when singular)."""
    n = len(rows[0])
    ata = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    atb = [sum(r[i] * y for r, y in zip(rows, rhs, strict=True)) for i in range(n)]
    return _solve(ata, atb)


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting (None when singular)."""
    m = [row[:] + [rhs] for row, rhs in zip(a, b, strict=True)]
    n = len(m)
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-9:
            return None
        m[col], m[piv] = m[piv], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


class TimesStore:
    """Measured run times, shared by every session on the host (``flock``-ed JSON).

    Layout: ``{"runs": {run_id: [[cpus, duration_s, wall_s], ...]}}``, newest last.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_root() / "gauntlet-times.json"

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"runs": {}}
        runs = doc.get("runs") if isinstance(doc, dict) else None
        return {"runs": runs if isinstance(runs, dict) else {}}

    def record(self, run_id: str, cpus: int, duration_s: float, wall_s: float) -> None:
        """Add one measurement (atomically; concurrent sessions serialise on a lock)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = self._read()
            runs = doc["runs"]
            seq = runs.pop(run_id, [])  # re-inserted last: the dict keeps recency order
            seq = [*seq, [int(cpus), float(duration_s), round(float(wall_s), 2)]][-_KEEP:]
            runs[run_id] = seq
            while len(runs) > _MAX_IDS:
                runs.pop(next(iter(runs)))
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, self.path)

    def points(self) -> list[tuple[int, float, float]]:
        out = []
        for seq in self._read()["runs"].values():
            for p in seq if isinstance(seq, list) else ():
                if isinstance(p, list) and len(p) == 3:
                    try:
                        out.append((int(p[0]), float(p[1]), float(p[2])))
                    except (TypeError, ValueError):
                        continue
        return out

    def model(self) -> CostModel:
        """The calibrated model: fitted coefficients plus each run id's measured mean."""
        known = {}
        for rid, seq in self._read()["runs"].items():
            walls = [p[2] for p in seq if isinstance(p, list) and len(p) == 3]
            if walls:
                known[str(rid)] = sum(walls) / len(walls)
        m = fit(self.points())
        return CostModel(m.boot_s, m.per_cpu_s, m.stretch, known)
