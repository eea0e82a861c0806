"""Recorded results (``tests/framework/recorded/``): a real EEVDF steady run (result.json
and its monitor samples), and a way to make an artificially slowed copy of it."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "recorded"


def load_fixture(name: str = "eevdf_steady") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name / "result.json").read_text())
    return doc


def slowed(doc: dict[str, Any], factor: float, run_id: str) -> dict[str, Any]:
    """``doc`` as if its workload ran ``factor`` times slower: fewer work units, longer gaps
    and run delays (what a scheduler that starves its workers would show)."""
    out = copy.deepcopy(doc)
    out["run_id"] = run_id
    for w in out["workers"]:
        w["work_units"] = int(w["work_units"] / factor)
        w["max_gap_ms"] = w["max_gap_ms"] * factor * 20
    for step in out["scenario"]["steps"]:
        for seg in step["workers"]:
            seg["work_units"] = int(seg["work_units"] / factor)
            seg["run_delay_ns"] = int(seg["run_delay_ns"] * factor)
            seg["max_gap_ms"] = seg["max_gap_ms"] * factor * 20
    return out


def write_run(root: Path, doc: dict[str, Any], name: str) -> Path:
    """A run directory under ``root`` holding ``doc`` as its result (and the fixture's samples)."""
    run = root / name
    run.mkdir(parents=True)
    doc = dict(doc, run_dir=str(run))
    (run / "result.json").write_text(json.dumps(doc))
    shutil.copy(FIXTURES / "eevdf_steady" / "monitor-monitor.jsonl", run)
    return run


def gauntlet(root: Path, presets: tuple[str, ...], profiles: tuple[str, ...]) -> Path:
    """A gauntlet's worth of runs under ``root/runs`` with their sidecars in ``root/sidecars``
    (the recorded run, one variant per preset x profile; the last one failed)."""
    from schedlab_results import sidecar

    doc = load_fixture()
    cells = [(p, q) for p in presets for q in profiles]
    for i, (preset, profile) in enumerate(cells):
        variant = dict(doc, run_id=f"g{i}")
        if i == len(cells) - 1:
            variant.update(
                passed=False, verdict="failed", reason="cg_1 starved", reasons=["cg_1 starved"]
            )
        run = write_run(root / "runs", variant, f"g{i}")
        flags = () if profile == "default" else tuple(profile.split("+"))
        sidecar.write(
            run,
            f"gauntlet/steady/{preset}/{profile}",
            dest=root / "sidecars",
            flags=flags,
            preset=preset,
        )
    return root / "sidecars"
