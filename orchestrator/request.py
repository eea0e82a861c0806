"""What one ``schedlab run`` is asked to do, as four frozen parts composed by :class:`RunRequest`.

- :class:`VmShape`: the machine (engine, kernel, image, topology, memory, timeout, accel).
- :class:`Scenario`: what runs in the guest (scenario name, duration, cgroups, workers).
- :class:`VerdictLimits`: the test's overrides of the workers' limits (judged on the host).
- :class:`Hooks`: test hooks that prove behaviour end to end (wire noise, crashes, faults).
- :class:`~orchestrator.sched_outcome.SchedAsked`: the scheduler under test, as reported.
- :class:`MonitorChecks`: the monitor's thresholds and the sched_ext watchdog override.

:meth:`RunRequest.guest_spec` is the one place these become the guest's
:class:`~guest.spec.RunSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guest import spec as guest_spec
from guest.rundoc import Scheduler
from schedlab_shared.topology import Topology
from verdicts.thresholds import MonitorThresholds

from .faults import Fault
from .inputs import HostFile
from .sched_outcome import SchedAsked

__all__ = (
    "BOOT_ALLOWANCE_S",
    "STOP_GRACE_S",
    "Hooks",
    "MonitorChecks",
    "RunRequest",
    "Scenario",
    "VerdictLimits",
    "VmShape",
)

BOOT_ALLOWANCE_S = 90.0  # boot under a loaded TCG host, before the scenario starts
# From the graceful stop request at the run's timeout to the VM's hard timeout: time for
# the guest to stop its workers, report what they did and power off (TCG-slow).
STOP_GRACE_S = 15.0
#: The run's inputs after SYS_RDY at the slowest rate seen (our VMM inside the testbed):
#: the run's timeout grows by their size at this rate.
INPUTS_SLOW_BYTES_S = 50e3
_SPEC_DEFAULTS = guest_spec.RunSpec._field_defaults


@dataclass(frozen=True)
class VmShape:
    """The VM of a run.

    :param engine: ``qemu`` or ``kvm`` (already chosen).
    :param engine_reason: why that engine (shown to the user).
    :param kernel: the resolved ``orchestrator.kernel.artifacts.KernelArtifacts``.
    :param initrd: the guest image.
    :param timeout_s: the run's timeout, when the guest is asked to stop and report; None
        derives it from the scenario (:attr:`RunRequest.run_timeout_s`).
    :param boot_bzimage: KVM engine: boot the bzImage even though a vmlinux exists.
    :param performance: KVM engine performance mode (VmConfig.performance).
    :param oops_panic: ``oops=panic`` on the kernel command line. Off by default: an oops in
        a sched_ext scheduler's callback must leave room for sched_ext's own error exit.
    """

    engine: str
    engine_reason: str
    kernel: Any
    initrd: Path
    topology: Topology
    mem_mib: int = 512
    timeout_s: float | None = None
    qemu_accel: str = "tcg"
    extra_cmdline: tuple[str, ...] = ()
    boot_bzimage: bool = False
    oops_panic: bool = False
    performance: bool = False


@dataclass(frozen=True)
class Scenario:
    """What the guest runs: ``workers`` spinners in each of ``cgroups`` cgroups for ``duration_s``,
    or, with ``plan``, that scenario document (``schedlab_scenario.Scenario.to_document``).

    :param planned_s: seconds the plan's steps hold in all (it may exceed ``duration_s``).
    """

    name: str = "cgroup-spinners"
    duration_s: float = 5.0
    cgroups: int = 2
    workers: int = 2
    plan: dict[str, Any] | None = None
    planned_s: float = 0.0


@dataclass(frozen=True)
class VerdictLimits:
    """The test's overrides of the worker limits (``verdicts.worker_limits.WorkerLimits``,
    judged on the host); None keeps the default.

    :param fairness: largest allowed spread of the workers' off-CPU shares within a cgroup
        (``max_spread``; 0.15 is 15 percentage points).
    :param max_gap_ms: longest allowed gap between a worker's checkpoints (0: no check).
    :param other: further ``(limit name, value)`` overrides.
    :param expect_error: a workers' check (``verdicts.workers.CHECKS``) that must fail: the run
        passes only when it does.
    """

    fairness: float | None = None
    max_gap_ms: float | None = None
    other: tuple[tuple[str, Any], ...] = ()
    expect_error: str | None = None

    def worker_overrides(self) -> dict[str, Any]:
        """The overrides as a map of ``WorkerLimits`` fields."""
        out: dict[str, Any] = dict(self.other)
        if self.fairness is not None:
            out["max_spread"] = self.fairness
        if self.max_gap_ms is not None:
            out["max_gap_ms"] = self.max_gap_ms or None  # 0: no gap check
        return out


@dataclass(frozen=True)
class Hooks:
    """Test hooks (hidden CLI options); the defaults do nothing.

    :param wire_noise: rounds of broken frames the guest sends before the workload.
    :param crash: a value of :data:`guest.spec.CRASHES`: the guest crashes on purpose.
    :param faults: host processes to kill, or the VM to pause, during the run.
    :param corrupt_spec: the host hands the guest a run spec it must reject (BAD_SPEC).
    :param truncate_image: bytes cut off the end of the guest image (BAD_IMAGE).
    :param hide_bulk_port: the VMM names the bulk port otherwise (QEMU engine): the guest
        cannot report at all.
    """

    wire_noise: int = 0
    crash: str = ""
    faults: tuple[Fault, ...] = ()
    corrupt_spec: bool = False
    truncate_image: int = 0
    hide_bulk_port: bool = False


@dataclass(frozen=True)
class MonitorChecks:
    """What the monitor judges and changes on a sched_ext run.

    :param thresholds: the resolved thresholds (defaults, scheduler's, test's).
    :param watchdog_timeout_s: shorten the attached scheduler's watchdog to this (None: leave
        it); the kernel takes at most 30 s.
    """

    thresholds: MonitorThresholds = field(default_factory=MonitorThresholds)
    watchdog_timeout_s: float | None = None


@dataclass(frozen=True)
class RunRequest:
    """Validated inputs of one run.

    :param sched: the scheduler under test as the result names it (its files and argv
        travel in the run's inputs).
    :param run_dir: where logs and results go (default: a new directory in the run cache).
    :param monitors: monitor processes to attach.
    :param listen: host for the VMM's TCP endpoints (remote collectors).
    :param store: a ``schedlab collect`` store the collector forwards the run directory to.
    :param files: host files the guest gets after SYS_RDY (scheduler, libraries, includes).
    :param snapshots: KVM engine: start from the cached snapshot of this VM at SYS_RDY, or
        leave one for the next run (orchestrator.snapshot_cache).
    :param scheduler: the sched_ext scheduler to start (a guest path, often one of
        ``files``); None means EEVDF.
    """

    vm: VmShape
    scenario: Scenario = field(default_factory=Scenario)
    limits: VerdictLimits = field(default_factory=VerdictLimits)
    hooks: Hooks = field(default_factory=Hooks)
    sched: SchedAsked = field(default_factory=SchedAsked)
    run_dir: Path | None = None
    monitors: int = 1
    monitor_interval_s: float = 0.1
    listen: str | None = None
    store: str | None = None
    checks: MonitorChecks = field(default_factory=MonitorChecks)
    files: tuple[HostFile, ...] = ()
    scheduler: Scheduler | None = None
    snapshots: bool = False
    session: Any = None  # guest.rundoc.Session: a shell or exec session in place of the scenario

    @property
    def run_timeout_s(self) -> float:
        """When the guest is asked to stop, from the VM's start: given, or the boot allowance
        plus :attr:`run_part_s`. A derived one moves later when the guest is ready late
        (:meth:`stop_at`)."""
        return self.vm.timeout_s or (BOOT_ALLOWANCE_S + self.run_part_s)

    @property
    def run_part_s(self) -> float:
        """Seconds from SYS_RDY to the graceful stop: the inputs' transfer, then a TCG-slow
        scenario (3x its length) and 30 s for the scheduler's attach and the reports."""
        length = max(self.scenario.duration_s, self.scenario.planned_s)
        return length * 3 + 30.0 + self.inputs_allowance_s

    def stop_at(self, started_at: float, sys_rdy_at: float | None) -> float:
        """The wall time of the graceful stop: ``started_at + run_timeout_s``, or, for a
        derived timeout, no earlier than :attr:`run_part_s` after SYS_RDY. A slow boot (the
        KVM engine nested in the testbed takes 2-3 min) must not eat the run's own time: it
        did, and scx_simple's workers were stopped before their first unit."""
        at = started_at + self.run_timeout_s
        if sys_rdy_at and not self.vm.timeout_s:
            at = max(at, sys_rdy_at + self.run_part_s)
        return at

    @property
    def inputs_allowance_s(self) -> float:
        """Seconds the run's files may take to reach the guest (their size, slowly)."""
        total = 0
        for f in self.files:
            try:
                total += f.path.stat().st_size
            except OSError:
                pass  # the session reports a missing file when it prepares the inputs
        return total / INPUTS_SLOW_BYTES_S

    @property
    def vm_timeout_s(self) -> float:
        """The VMM's own backstop, should the orchestrator be gone: the latest graceful stop
        (:meth:`stop_at` with SYS_RDY at :attr:`run_timeout_s`) plus the stop's grace. The
        session stops the VM itself :data:`STOP_GRACE_S` after its graceful stop."""
        late = 0.0 if self.vm.timeout_s else self.run_part_s
        return self.run_timeout_s + late + STOP_GRACE_S

    def guest_spec(self) -> guest_spec.RunSpec:
        """The guest's run spec (validated: raises :class:`~guest.spec.SpecError`)."""
        s, lim, h = self.scenario, self.limits, self.hooks
        # A plan travels as the run document's scenario (guest.rundoc.build(scenario=...)),
        # which then takes only the limits and hooks from this spec.
        return guest_spec.RunSpec(
            scenario=s.name if s.name in guest_spec.PROBES else "cgroup-spinners",
            duration=s.duration_s,
            cgroups=s.cgroups,
            workers=s.workers,
            fairness=_SPEC_DEFAULTS["fairness"] if lim.fairness is None else lim.fairness,
            max_gap_ms=lim.max_gap_ms or 0.0,
            wire_noise=h.wire_noise,
            crash=h.crash,
        )
