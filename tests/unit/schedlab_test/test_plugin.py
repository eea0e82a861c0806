"""The pytest plugin against a fake VM run (the real one is tier 3: test_pytest_plugin_tcg)."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

# Imported here, before pytester snapshots sys.modules: its runs then use these very module
# objects (the ones monkeypatched), not fresh imports.
import schedlab_test.context
import schedlab_test.costs
import schedlab_test.plugin
import schedlab_test.slots  # noqa: F401
from schedlab_test import vmrun
from tests.framework.recorded_results import load_fixture
from tests.framework.schedlab_plugin import plugin_args

pytest_plugins = ["pytester"]

calls: list[list[str]] = []


def _fake(verdict: str, reasons: list[str]) -> Any:  # noqa: ANN401
    def run(argv: list[str], json_path: Path, log: Path) -> vmrun.RunOutcome:
        calls.append(argv)
        doc = copy.deepcopy(load_fixture())
        doc.update(
            verdict=verdict,
            passed=verdict == "passed",
            reasons=reasons,
            reason=reasons[0] if reasons else "",
            run_dir=str(json_path.parent),
        )
        json_path.write_text(json.dumps(doc))
        log.write_text("fake run\n")
        return vmrun.RunOutcome(0 if verdict == "passed" else 1, doc, 0.5, log, [])

    return run


@pytest.fixture
def fake_vm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    calls.clear()
    monkeypatch.setenv("SCHEDLAB_VM_SLOTS", "2")

    def use(verdict: str = "passed", reasons: list[str] | None = None) -> None:
        monkeypatch.setattr("schedlab_test.context.run_vm", _fake(verdict, reasons or []))

    monkeypatch.setattr("schedlab_test.slots.cache_root", lambda: tmp_path / "cache")
    monkeypatch.setattr("schedlab_test.costs.cache_root", lambda: tmp_path / "cache")
    return use


TESTS = """
import pytest
import schedlab_test as sl

@sl.vm(topology="tiny-2llc", duration=1)
def test_returns_scenario(ctx):
    assert ctx.topology.nr_llcs == 2
    return sl.Scenario("two", [sl.Step(cgroups=[sl.CgroupDef("cg_0"), sl.CgroupDef("cg_1")])])

@sl.vm(expect_error="spread > 0")
def test_expects_unfair(ctx):
    ctx.run(ctx.steady())

@pytest.mark.parametrize("workers", [1, 2])
@sl.vm()
def test_param(ctx, workers):
    ctx.run()

@sl.vm()
def test_nothing_ran(ctx):
    pass
"""


def _args(pytester: pytest.Pytester, *more: str) -> list[str]:
    return [
        *plugin_args(),
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        f"--schedlab-out={pytester.path / 'out'}",
        *more,
    ]


def test_a_failing_verdict_fails_with_its_evidence(pytester: pytest.Pytester, fake_vm) -> None:
    fake_vm("failed", ["guest verdict: fairness: spread > 0.35: cg_0 spread 0.9"])
    pytester.makepyfile(test_mine=TESTS)
    r = pytester.runpytest(*_args(pytester, "--junitxml=j.xml"))
    r.assert_outcomes(passed=1, failed=4)
    out = r.stdout.str()
    assert "schedlab verdict: failed" in out and "cg_0 spread 0.9" in out
    assert "neither returned a Scenario nor called ctx.run()" in out
    root = ET.parse(pytester.path / "j.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {
        "test_returns_scenario",
        "test_expects_unfair",
        "test_param[1]",
        "test_param[2]",
        "test_nothing_ran",
    }
    assert cases["test_expects_unfair"].find("failure") is None  # the named failure happened
    props = {p.get("name") for p in cases["test_param[1]"].iter("property")}
    assert {"schedlab_sidecar", "schedlab_run_dir", "schedlab_wall_s"} <= props


def test_a_passing_run_fails_an_expected_error_test(pytester: pytest.Pytester, fake_vm) -> None:
    fake_vm("passed")
    pytester.makepyfile(test_mine=TESTS)
    r = pytester.runpytest(*_args(pytester, "-k", "returns or expects"))
    r.assert_outcomes(passed=1, failed=1, deselected=4 - 1 - 1 + 1)
    assert "expected a failure matching 'spread > 0', but the run passed" in r.stdout.str()


def test_another_failure_does_not_satisfy_expect_error(pytester: pytest.Pytester, fake_vm) -> None:
    fake_vm("failed", ["guest verdict: starvation: cg_0 worker 3 did no work"])
    pytester.makepyfile(test_mine=TESTS)
    r = pytester.runpytest(*_args(pytester, "-k", "expects"))
    r.assert_outcomes(failed=1, deselected=4)
    assert "got another" in r.stdout.str() and "did no work" in r.stdout.str()


def test_the_plan_and_shape_reach_the_run_command(pytester: pytest.Pytester, fake_vm) -> None:
    fake_vm("passed")
    pytester.makepyfile(test_mine=TESTS)
    pytester.runpytest(*_args(pytester, "-k", "returns_scenario")).assert_outcomes(passed=1)
    (argv,) = calls
    assert argv[argv.index("--topology") + 1] == "1,2,2,1"
    assert argv[argv.index("--duration") + 1] == "1"
    plan = json.loads(Path(argv[argv.index("--plan") + 1]).read_text())
    assert plan["name"] == "two" and plan["topology"]["llcs"] == [[0, 1], [2, 3]]
    sidecars = list((pytester.path / "out" / "sidecars").glob("*.sidecar.json"))
    assert len(sidecars) == 1
    assert json.loads(sidecars[0].read_text())["identity"]["test"].endswith("test_returns_scenario")


GAUNTLET = """
import schedlab_test as sl

@sl.vm(scheduler="scx_qmap", gauntlet_flags=["batch", "boost-nice"], excluded_flags=["boost-nice"],
       presets=["tiny-1llc", "tiny-2llc", "smt-2llc", "numa2-4llc"], max_nodes=1)
def test_g(ctx):
    ctx.run()

@sl.vm(gauntlet=False)
def test_plain(ctx):
    ctx.run()
"""


def test_gauntlet_is_opt_in_and_prunes(pytester: pytest.Pytester, fake_vm) -> None:
    pytester.makepyfile(test_g=GAUNTLET)
    base = pytester.runpytest(*_args(pytester, "--collect-only", "-q"))
    assert (
        "test_g.py::test_g\n" in base.stdout.str() + "\n" and "gauntlet/" not in base.stdout.str()
    )
    r = pytester.runpytest(*_args(pytester, "--gauntlet", "--collect-only", "-q"))
    ids = [ln for ln in r.stdout.lines if "gauntlet/" in ln]
    assert [i.split("[")[1].rstrip("]") for i in ids] == [
        f"gauntlet/test_g/{p}/{f}"
        for p in ("tiny-1llc", "tiny-2llc", "smt-2llc")
        for f in ("default", "batch")
    ]  # numa2-4llc: max_nodes=1; boost-nice: excluded
    assert "test_g.py::test_plain" in r.stdout.str()


def test_gauntlet_variant_runs_its_preset_and_profile(pytester: pytest.Pytester, fake_vm) -> None:
    fake_vm("passed")
    pytester.makepyfile(test_g=GAUNTLET)
    r = pytester.runpytest(*_args(pytester, "--gauntlet", "-k", "smt-2llc/batch"))
    r.assert_outcomes(passed=1, deselected=6)
    (argv,) = calls
    assert argv[argv.index("--topology") + 1] == "1,2,2,2"
    assert argv[argv.index("--scheduler") + 1] == "scx_qmap"
    assert argv[argv.index("--sched-flag") + 1] == "batch"


def test_budget_and_shard_select_deterministically(pytester: pytest.Pytester, fake_vm) -> None:
    pytester.makepyfile(test_g=GAUNTLET)
    r = pytester.runpytest(*_args(pytester, "--gauntlet", "--budget", "60", "--collect-only", "-q"))
    kept = [ln for ln in r.stdout.lines if "gauntlet/" in ln]
    assert 0 < len(kept) < 6
    assert "schedlab: gauntlet budget 60 s" in r.stdout.str()
    shards = []
    for k in (1, 2):
        s = pytester.runpytest(
            *_args(pytester, "--gauntlet", f"--shard={k}/2", "--collect-only", "-q")
        )
        shards.append({ln for ln in s.stdout.lines if "::" in ln})
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert len(shards[0] | shards[1]) == 7


def test_bad_marker_keywords_are_one_line(pytester: pytest.Pytester, fake_vm) -> None:
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.schedlab(topology="tiny-2lc")
def test_topo(ctx):
    ctx.run()

@pytest.mark.schedlab(wokers=2)
def test_kw(ctx):
    ctx.run()
"""
    )
    r = pytester.runpytest(*_args(pytester))
    r.assert_outcomes(errors=2)
    out = r.stdout.str()
    assert "did you mean tiny-2llc" in out and "unknown keyword 'wokers'" in out
    assert "Traceback" not in out
