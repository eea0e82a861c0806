"""A result sidecar per test: who ran what where (identity) and what it measured (metrics).

The stable API (the pytest plugin calls :func:`write` once per test)::

    from schedlab_results import sidecar
    path = sidecar.write(run_dir, "gauntlet/steady/tiny-1llc/default",
                         flags=("llc",), preset="tiny-1llc")
    doc = sidecar.read(path)            # checked against sidecar.schema.json
    docs = sidecar.discover(some_dir)   # sidecar files and bare run dirs, recursively

``result`` may be a run directory, a ``result.json`` path or the result document itself.
Sidecars go to ``dest``, else ``$SCHEDLAB_SIDECAR_DIR``, else the run directory, named
``<test>-<identity hash>.sidecar.json`` so repeats of one identity land side by side only
when written to a shared directory under distinct run ids.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import provenance, result_doc
from .metrics import derive
from .schema import SCHEMA_NAME, SCHEMA_VERSION, SidecarError, check

__all__ = (
    "ENV_DIR",
    "SUFFIX",
    "SidecarError",
    "build",
    "discover",
    "from_run_dir",
    "profile_name",
    "read",
    "run_test_name",
    "write",
)

SUFFIX = ".sidecar.json"
ENV_DIR = "SCHEDLAB_SIDECAR_DIR"
MAX_BYTES = 4 << 20  # a sidecar is a few KiB: refuse to parse anything far larger


def profile_name(flags: Iterable[str]) -> str:
    """A flag profile's name: its flags joined with ``+``, or ``default`` (ktstr's rule)."""
    flags = list(flags)
    return "+".join(flags) if flags else "default"


def _result(result: Path | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(result, Mapping):
        return result_doc.validate(dict(result))
    return result_doc.load(Path(result))


def build(
    result: Path | str | Mapping[str, Any],
    test: str,
    *,
    flags: Iterable[str] = (),
    preset: str | None = None,
    kernel_label: str | None = None,
    project_commit: str | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """The sidecar document of one test's result (checked against the schema).

    :raises SidecarError: the result is unreadable or the sidecar would not be valid.
    """
    try:
        doc = _result(result)
    except result_doc.ResultError as e:
        raise SidecarError(f"result: {e}") from None
    sched, topo = doc.get("scheduler") or {}, doc.get("topology") or {}
    flags = tuple(flags)
    side = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "identity": {
            "test": test,
            "scheduler": {
                "name": sched.get("name", "eevdf"),
                "args": list(sched.get("args", ())),
                "flags": list(flags),
                "profile": profile_name(flags),
            },
            "kernel": {
                "version": (doc.get("kernel") or {}).get("version", ""),
                "label": kernel_label,
            },
            "topology": {
                "spec": str(topo.get("spec", "")),
                "preset": preset,
                **{k: int(topo.get(k, 1)) for k in ("nodes", "llcs", "cores", "threads", "cpus")},
            },
            "engine": str(doc.get("engine", "")),
            "project_commit": project_commit or provenance.project_commit(),
            "host": host or provenance.host(),
        },
        "run": {
            "run_id": str(doc.get("run_id", "")),
            "run_dir": doc.get("run_dir"),
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "passed": doc["passed"],
            "verdict": doc["verdict"],
            "reason": str(doc.get("reason", "")),
        },
        "metrics": derive(doc),
    }
    return check(side, f"sidecar of {test}")


def _file_name(side: dict[str, Any]) -> str:
    ident = side["identity"]
    digest = hashlib.sha256(
        json.dumps([ident, side["run"]["run_id"]], sort_keys=True).encode()
    ).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "_", ident["test"])[:120]
    return f"{slug}-{digest}{SUFFIX}"


def write(
    result: Path | str | Mapping[str, Any],
    test: str,
    dest: Path | str | None = None,
    **identity: Any,
) -> Path:
    """Build and write a test's sidecar (atomically); return its path.

    ``identity``: :func:`build`'s keywords (``flags``, ``preset``, ``kernel_label``...).
    """
    side = build(result, test, **identity)
    where = dest or os.environ.get(ENV_DIR) or side["run"]["run_dir"]
    if not where:
        raise SidecarError(f"sidecar of {test}: no destination (no dest, ${ENV_DIR}, run_dir)")
    out = Path(where) / _file_name(side)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(side, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, out)
    return out


def read(path: Path | str) -> dict[str, Any]:
    """A sidecar file, checked against the schema.

    :raises SidecarError: unreadable, not JSON, too large, or not matching the schema.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SidecarError(f"{path}: larger than {MAX_BYTES} bytes: not a sidecar")
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SidecarError(f"{path}: {e}") from None
    return check(doc, str(path))


def run_test_name(doc: dict[str, Any]) -> str:
    """The test name of a run made outside the plugin: ``run/<scenario>``."""
    scenario = (doc.get("scenario") or {}).get("name")
    return f"run/{scenario or 'default'}"


def from_run_dir(run_dir: Path | str, test: str | None = None) -> dict[str, Any]:
    """A sidecar for a run directory that has none (``schedlab run`` outside the plugin):
    the test is named ``run/<scenario>``; the commit is unknown (not recorded by the run)."""
    try:
        doc = result_doc.load(Path(run_dir))
    except result_doc.ResultError as e:
        raise SidecarError(str(e)) from None
    return build(doc, test or run_test_name(doc), project_commit="unknown")


def discover(path: Path | str) -> list[dict[str, Any]]:
    """Every sidecar under ``path`` (a sidecar file, or a directory searched recursively),
    plus a derived one for each run directory no sidecar speaks for; sorted by test.

    :raises SidecarError: a bad sidecar or result, or nothing found.
    """
    path = Path(path)
    if path.is_file() and path.name.endswith(SUFFIX):
        return [read(path)]
    if path.is_file() and path.name == result_doc.RESULT_FILE:
        return [from_run_dir(path.parent)]
    if not path.is_dir():
        raise SidecarError(f"{path}: not a run directory, sidecar directory or sidecar file")
    sides = [read(p) for p in sorted(path.rglob(f"*{SUFFIX}"))]
    covered = {s["run"]["run_id"] for s in sides} | {s["run"]["run_dir"] for s in sides}
    for res in sorted(path.rglob(result_doc.RESULT_FILE)):
        run_dir = res.parent
        if str(run_dir) in covered or any(run_dir.glob(f"*{SUFFIX}")):
            continue
        side = from_run_dir(run_dir)
        if side["run"]["run_id"] and side["run"]["run_id"] in covered:
            continue
        covered.add(side["run"]["run_id"])
        sides.append(side)
    if not sides:
        raise SidecarError(f"{path}: holds no sidecar (*{SUFFIX}) and no run (result.json)")
    return sorted(sides, key=lambda s: s["identity"]["test"])
