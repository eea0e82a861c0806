"""The ``ctx`` fixture: what a test sees of its VM, and :meth:`Ctx.run`.

>>> def test_two_cgroups(ctx):
...     ctx.run(Scenario("two", [Step(cgroups=[CgroupDef("cg_0"), CgroupDef("cg_1")])]))
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from schedlab_scenario import Scenario, ScenarioError
from schedlab_shared.topology import Topology, TopologyError
from schedlab_shared.topology_presets import Shape, engine_refusal

from .session import Session
from .spec import VmSpec
from .vmrun import RunOutcome, cli_argv, evidence_text, run_vm

if TYPE_CHECKING:
    from .gauntlet import Variant

__all__ = ("Ctx", "Session")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_")[:150] or "test"


class Ctx:
    """A test's VM: its shape (``topology``, ``shape``, ``preset``), the run settings
    (``duration``, ``workers``, ``scheduler``, ``flags``) and :meth:`run`."""

    def __init__(self, item: pytest.Item, spec: VmSpec, session: Session, variant: Variant | None):
        self.item = item
        self.spec = spec
        self.session = session
        self.variant = variant
        self.shape: Shape = variant.preset.shape if variant else spec.shape
        self.preset: str | None = variant.preset.name if variant else None
        self.flags: tuple[str, ...] = variant.profile.flags if variant else spec.flags
        self.kernel: str | None = (
            (variant.kernel if variant else None) or spec.kernel or session.kernel
        )
        self.duration, self.workers, self.scheduler = spec.duration, spec.workers, spec.scheduler
        self.outcome: RunOutcome | None = None
        self.sidecar: Path | None = None

    @property
    def test_id(self) -> str:
        """The variant's name, or the test's node id."""
        return self.variant.id if self.variant else self.item.nodeid

    @property
    def topology(self) -> Topology:
        """The VM topology; skips the test where no engine here can build it."""
        why = engine_refusal(self.shape, self.session.engine_name())
        if why:
            pytest.skip(why)
        try:
            return self.shape.topology()
        except TopologyError as e:
            pytest.skip(str(e))

    def steady(self) -> Scenario:
        """ktstr's ``steady``: two cgroups of equal load, no cpusets."""
        return self.catalog("steady")

    def catalog(self, name: str) -> Scenario:
        """A canned scenario (``schedlab list``) built for this VM's topology."""
        from schedlab_scenario.catalog import get

        try:
            return get(name).build(self.topology)
        except KeyError as e:
            pytest.fail(f"catalog: {e.args[0]}", pytrace=False)

    def run(self, scenario: Scenario | None = None) -> RunOutcome:
        """Boot the VM, play ``scenario`` (None: the default steady run), judge.

        A failing verdict fails the test with its evidence; with ``expect_error`` the test
        passes only when the run fails with a reason matching it. Returns the outcome
        (``result`` is the run's result document) for further checks.
        """
        if self.outcome is not None:
            pytest.fail("ctx.run() runs once per test (one VM per test)", pytrace=False)
        topo = self.topology
        work = self.session.out / _slug(self.test_id)
        work.mkdir(parents=True, exist_ok=True)
        plan = None
        if scenario is not None:
            if not isinstance(scenario, Scenario):
                pytest.fail(
                    f"ctx.run: want a Scenario, got {type(scenario).__name__}", pytrace=False
                )
            try:
                doc = scenario.to_document(topo, duration_s=self.duration, workers=self.workers)
            except ScenarioError as e:
                pytest.fail(f"scenario {scenario.name}: {e}", pytrace=False)
            plan = work / "plan.json"
            plan.write_text(__import__("json").dumps(doc))
        json_path = work / "result.json"
        json_path.unlink(missing_ok=True)
        spec = self.spec if not self.variant else _with_flags(self.spec, self.flags)
        argv = cli_argv(spec, plan, json_path, self.kernel, self.session.engine)
        argv[argv.index("--topology") + 1] = topo.spec
        self.outcome = self._run_in_slots(argv, json_path, work, topo.nr_cpus)
        self._record(topo.nr_cpus)
        self._judge(self.outcome)
        return self.outcome

    def _run_in_slots(self, argv: list[str], json_path: Path, work: Path, cpus: int) -> RunOutcome:
        from .slots import Slots, SlotsError

        slots = Slots(self.session.slots_cpus, self.session.slots_mem_mib)
        try:
            lease = slots.acquire(cpus, self.spec.memory, notify=lambda m: _say(self.item, m))
        except SlotsError as e:
            pytest.fail(str(e), pytrace=False)
        try:
            if lease.waited_s > 0.5:
                self.item.user_properties.append(("schedlab_slot_wait_s", round(lease.waited_s, 1)))
            return run_vm(argv, json_path, work / "run.log")
        finally:
            lease.release()

    def _record(self, cpus: int) -> None:
        o = self.outcome
        assert o is not None
        self.item.user_properties.append(("schedlab_wall_s", round(o.wall_s, 1)))
        if o.run_dir:
            self.item.user_properties.append(("schedlab_run_dir", o.run_dir))
        if o.result is None:
            return
        from .costs import TimesStore

        try:
            TimesStore().record(self.item.nodeid, cpus, self.duration, o.wall_s)
        except OSError:
            pass  # timing is advisory
        self.sidecar = _write_sidecar(self, o)
        if self.sidecar is not None:
            self.item.user_properties.append(("schedlab_sidecar", str(self.sidecar)))

    def _judge(self, o: RunOutcome) -> None:
        want = self.spec.expect_re()
        if want is None:
            if o.verdict != "passed" or o.exit_code != 0:
                pytest.fail(evidence_text(o), pytrace=False)
            return
        if o.verdict == "passed" and o.exit_code == 0:
            pytest.fail(
                f"expected a failure matching {self.spec.expect_error!r}, but the run passed\n"
                + evidence_text(o),
                pytrace=False,
            )
        if not any(want.search(r) for r in o.reasons):
            pytest.fail(
                f"expected a failure matching {self.spec.expect_error!r}, got another\n"
                + evidence_text(o),
                pytrace=False,
            )


def _with_flags(spec: VmSpec, flags: tuple[str, ...]) -> VmSpec:
    from dataclasses import replace

    return replace(spec, flags=flags)


def _say(item: pytest.Item, message: str) -> None:
    """A line the user sees now, past pytest's capture (also under pytest-xdist)."""
    line = f"schedlab: {item.nodeid}: {message}"
    capman: Any = item.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            os.write(2, (line + "\n").encode())
    else:
        os.write(2, (line + "\n").encode())
    item.add_report_section("call", "schedlab", line)


def _write_sidecar(ctx: Ctx, o: RunOutcome) -> Path | None:
    """The test's result sidecar (schedlab_results' schema); a failure to write one is said
    in the test's report, never fatal."""
    from schedlab_results import sidecar

    dest = ctx.session.sidecars or Path(tempfile.gettempdir())
    try:
        return sidecar.write(
            o.result or {},
            ctx.test_id,
            dest,
            flags=ctx.flags,
            preset=ctx.preset,
            kernel_label=ctx.variant.kernel if ctx.variant else None,
        )
    except (sidecar.SidecarError, OSError) as e:
        ctx.item.add_report_section("call", "schedlab sidecar", f"not written: {e}")
        return None
