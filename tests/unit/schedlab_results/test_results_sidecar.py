"""Sidecars: built from a recorded result.json, valid against the shipped JSON Schema,
refused when they do not match it, found again in run and sidecar directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schedlab_results import schema, sidecar
from schedlab_results.metrics import METRICS
from tests.framework.recorded_results import write_run


def test_the_schema_lists_exactly_the_metrics_the_code_derives() -> None:
    props = schema.schema()["properties"]["metrics"]
    assert set(props["properties"]) == set(METRICS) == set(props["required"])


def test_a_recorded_run_gives_a_valid_sidecar_with_its_identity(
    tmp_path: Path, eevdf_doc: dict[str, Any]
) -> None:
    run = write_run(tmp_path, eevdf_doc, "r1")
    path = sidecar.write(run, "gauntlet/steady/tiny-1llc/llc", flags=["llc"], preset="tiny-1llc")
    assert path.parent == run and path.name.endswith(sidecar.SUFFIX)
    doc = sidecar.read(path)
    ident = doc["identity"]
    assert ident["test"] == "gauntlet/steady/tiny-1llc/llc"
    assert ident["scheduler"] == {"name": "eevdf", "args": [], "flags": ["llc"], "profile": "llc"}
    assert ident["kernel"]["version"] == "7.2.13+deb14-cloud-amd64"
    assert ident["topology"]["spec"] == "1,1,2,1" and ident["topology"]["cpus"] == 2
    assert ident["topology"]["preset"] == "tiny-1llc"
    assert ident["engine"] == "qemu" and ident["host"] and ident["project_commit"]
    assert doc["run"]["run_id"] == "20261202-013028-365560" and doc["run"]["passed"] is True


def test_metrics_are_derived_from_the_result(eevdf_doc: dict[str, Any]) -> None:
    m = sidecar.build(eevdf_doc, "t", project_commit="abc", host="h")["metrics"]
    units = [w["work_units"] for w in eevdf_doc["workers"]]
    assert m["total_iterations"] == sum(units)
    assert m["worst_iterations_per_worker"] == min(units)
    assert m["worst_gap_ms"] == pytest.approx(max(w["max_gap_ms"] for w in eevdf_doc["workers"]))
    spreads = [c["spread"] for c in eevdf_doc["guest"]["result"]["cgroups"]]
    assert m["worst_spread"] == pytest.approx(max(spreads) * 100)
    assert m["total_migrations"] == sum(
        s["migrations"] for st in eevdf_doc["scenario"]["steps"] for s in st["workers"]
    )
    assert m["max_imbalance_ratio"] >= 1 and m["stall_count"] == 0
    # EEVDF: no sched_ext events, no wake-latency work type, no NUMA
    assert m["total_fallback"] is None and m["worst_p99_wake_latency_us"] is None
    assert m["worst_page_locality"] is None


def test_flags_name_the_profile() -> None:
    assert sidecar.profile_name([]) == "default"
    assert sidecar.profile_name(["llc", "steal"]) == "llc+steal"


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["identity"].pop("host"), "identity"),
        (lambda d: d["metrics"].__setitem__("worst_gap_ms", "slow"), "metrics.worst_gap_ms"),
        (lambda d: d["metrics"].__setitem__("made_up", 1), "metrics"),
        (lambda d: d["run"].__setitem__("verdict", "maybe"), "run.verdict"),
        (lambda d: d.__setitem__("schema_version", 99), "schema_version 99"),
    ],
)
def test_a_sidecar_that_does_not_match_the_schema_is_refused_on_read(
    tmp_path: Path, eevdf_doc: dict[str, Any], mutate: Any, where: str
) -> None:
    doc = sidecar.build(eevdf_doc, "t", project_commit="abc", host="h")
    mutate(doc)
    bad = tmp_path / f"bad{sidecar.SUFFIX}"
    bad.write_text(json.dumps(doc))
    with pytest.raises(sidecar.SidecarError, match=f"bad{sidecar.SUFFIX}"):
        sidecar.read(bad)
    with pytest.raises(sidecar.SidecarError) as e:
        sidecar.read(bad)
    assert where in str(e.value) and "\n" not in str(e.value)


def test_a_bad_result_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text('{"passed": true}')
    with pytest.raises(sidecar.SidecarError, match="result.verdict: missing"):
        sidecar.write(tmp_path, "t")


def test_discover_takes_sidecars_and_bare_run_dirs_once_each(
    tmp_path: Path, eevdf_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_side = write_run(tmp_path, eevdf_doc, "a")
    sidecar.write(with_side, "test_a")
    write_run(tmp_path, dict(eevdf_doc, run_id="other"), "b")  # a bare run: derived
    shared = tmp_path / "sidecars"
    monkeypatch.setenv(sidecar.ENV_DIR, str(shared))
    sidecar.write(dict(eevdf_doc, run_id="third"), "test_c")
    found = sidecar.discover(tmp_path)
    assert [s["identity"]["test"] for s in found] == ["run/steady", "test_a", "test_c"]
    assert sidecar.discover(shared)[0]["run"]["run_id"] == "third"
    (tmp_path / "empty").mkdir()
    with pytest.raises(sidecar.SidecarError, match="holds no sidecar"):
        sidecar.discover(tmp_path / "empty")
