"""KvmEngine: our own VMM over /dev/kvm, behind the same Engine contract as the QEMU engine.

Threads: one ``vcpu<N>`` per vCPU, ``vmm-io`` (virtqueue notifications), ``vmm-watchdog``
(the deadline) and ``vmm-teardown`` (the single stop path, so a vCPU that ends the VM never
has to join itself). ``EngineHooks.exited`` is called exactly once, from the teardown.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from schedlab_shared import kernel_console
from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.vm_config import VmConfig
from vmm_proc.engines.base import EngineError, EngineHooks
from vmm_proc.engines.kvm.boot_plan import Boot, BootPlan
from vmm_proc.engines.kvm.console_tail import ConsoleTail
from vmm_proc.engines.kvm.device_manager import DeviceManager
from vmm_proc.engines.kvm.diagnostics import VcpuSnapshot, format_stuck_report
from vmm_proc.engines.kvm.exit_dispatch import ExitDispatcher, ShutdownLatch
from vmm_proc.engines.kvm.io_thread import IoThreadError
from vmm_proc.engines.kvm.performance import PerformanceMode
from vmm_proc.engines.kvm.snapshot_codec import SnapshotError
from vmm_proc.engines.kvm.snapshot_store import LoadedSnapshot, RestoreFrom, SnapshotRefused
from vmm_proc.engines.kvm.stream_batcher import StreamBatcher
from vmm_proc.engines.kvm.vcpu_control import VcpuEvent, VcpuResponse, VcpuStop
from vmm_proc.engines.kvm.vcpu_setup import apply_entry, cpuid_for_topology
from vmm_proc.engines.kvm.vcpu_thread import VcpuThread, VcpuThreadError
from vmm_proc.engines.kvm.vm import Machine
from vmm_proc.engines.kvm.watchdog import Watchdog
from vmm_proc.kvm.errors import KvmError
from vmm_proc.kvm.kick import install_kick_handler
from vmm_proc.mem.access import GuestMemoryError
from vmm_proc.mem.guest_memory import GuestMemory

__all__ = ("KvmEngine",)

log = logging.getLogger(__name__)

_BATCHED = frozenset({"console", "diag"})  # the UARTs: one byte per exit
_JOIN_S = 5.0
_CONTROL_S = 2.0


def _message(line: bytes) -> str:
    """A console line without its printk timestamp (``[    1.234567] ``)."""
    if line.startswith(b"[") and b"] " in line:
        line = line.split(b"] ", 1)[1]
    return line.decode("utf-8", "replace").strip()


class KvmEngine:
    """Boots ``config`` on /dev/kvm and reports through ``hooks``.

    :param boot: how the guest gets its code; default ``LinuxBoot(config)``. Tests pass a
        ``RawBoot`` micro-guest.
    :param kvm_path: the KVM device.
    :param restore: start from this snapshot instead of booting; any failure to restore
        raises SnapshotRefused (nothing left behind) and the caller boots cold.
    """

    name = "kvm"

    def __init__(
        self,
        config: VmConfig,
        hooks: EngineHooks,
        boot: Boot | None = None,
        kvm_path: str = "/dev/kvm",
        restore: RestoreFrom | None = None,
    ) -> None:
        self.config = config
        self._restore = restore
        self.start_kind = "restored" if restore is not None else "booted"
        self.start_s = 0.0  # start() until every vCPU runs
        self._hooks = hooks
        self._boot = boot
        self._kvm_path = kvm_path
        self._lock = threading.Lock()
        self._state = "new"  # new -> starting -> running -> stopping -> closed
        self._machine: Machine | None = None
        self._devices: DeviceManager | None = None
        self._threads: list[VcpuThread] = []
        self._dispatchers: list[ExitDispatcher] = []
        self._watchdog: Watchdog | None = None
        self._teardown_thread: threading.Thread | None = None
        self._stop_cause: tuple[ExitReason, str] | None = None
        self._shutdown = ShutdownLatch()
        self._tail = ConsoleTail()
        self._batcher = StreamBatcher(hooks.stream)
        self.plan: BootPlan | None = None
        self.restored_extra: dict[str, str] = {}
        self._perf: PerformanceMode | None = None

    # -- Engine protocol ------------------------------------------------------------------

    def start(self) -> None:
        """Build the VM and run it; raises EngineError (with nothing left behind) on failure."""
        with self._lock:
            if self._state != "new":
                raise EngineError(f"kvm engine: start() in state {self._state}")
            self._state = "starting"
        t0 = time.monotonic()
        try:
            install_kick_handler()
            if self.config.performance:
                self._perf = PerformanceMode(self.config.topology.nr_cpus)
            if self._restore is not None:
                self._build_restored(self._restore)
            else:
                self._build()
        except EngineError:
            self._release()
            raise
        except (KvmError, GuestMemoryError, OSError, ValueError, RuntimeError) as exc:
            self._release()
            if self._restore is not None:
                raise SnapshotRefused(self._restore.directory, str(exc)) from exc
            raise EngineError(f"kvm engine: {exc}") from exc
        except BaseException:
            self._release()  # nothing is left behind, whatever went wrong
            raise
        self._launch()
        self.start_s = time.monotonic() - t0
        if self._perf is not None:
            self._place_threads(self._perf)

    @property
    def performance_notes(self) -> list[str]:
        """What performance mode applied and refused, one line per measure (empty when off)."""
        return list(self._perf.notes) if self._perf is not None else []

    def _place_threads(self, perf: PerformanceMode) -> None:
        vcpus = [t.native_id or 0 for t in self._threads]
        device = self._devices.io_thread.native_id if self._devices is not None else 0
        others = [int(t) for t in os.listdir("/proc/self/task") if int(t) not in vcpus]
        perf.place_threads(vcpus, others, device)

    def memory_layout(self) -> list[dict[str, Any]]:
        """Guest RAM regions (``GuestMemory.layout()``); empty before start and after close."""
        m = self._machine
        if m is None or m.mem is None or m.mem.closed:
            return []
        return [dict(region) for region in m.mem.layout()]

    def send_console(self, data: bytes) -> None:
        """Queue host-to-guest bytes on the virtio console port 0 (guest /dev/hvc0)."""
        if self._devices is not None:
            accepted = self._devices.send_console(data)
            if accepted < len(data):
                log.warning(
                    "console input: %d of %d bytes dropped (guest not reading)",
                    len(data) - accepted,
                    len(data),
                )

    def send_bulk(self, data: bytes, timeout_s: float) -> int:
        """Host-to-guest bytes on the bulk port, bounded by the device's ``rx_limit``."""
        if self._devices is None:
            raise EngineError("kvm engine: the VM has no devices")
        return self._devices.send_bulk(data, timeout_s)

    def send_shell(self, data: bytes, timeout_s: float) -> int:
        """Host-to-guest bytes on the shell port (console port 2), as :meth:`send_bulk`."""
        if self._devices is None:
            raise EngineError("kvm engine: the VM has no devices")
        from .device_manager import SHELL_PORT

        return self._devices.send_bulk(data, timeout_s, SHELL_PORT)

    def bulk_pending(self) -> int:
        return self._devices.bulk_pending() if self._devices is not None else 0

    def stop(self, reason: ExitReason = ExitReason.STOPPED) -> None:
        """Stop the VM (idempotent); returns once ``exited`` was delivered or teardown timed out."""
        self._begin_stop(reason, f"stop requested ({reason.value})")
        t = self._teardown_thread
        if t is not None and t is not threading.current_thread():
            t.join(_JOIN_S * (len(self._threads) + 2))

    def close(self) -> None:
        """Stop if running, then release threads, eventfds, KVM fds and the RAM file."""
        with self._lock:
            state = self._state
        if state in ("running", "stopping"):
            self.stop(ExitReason.STOPPED)
        self._release()

    def vcpu_threads(self) -> tuple[list[tuple[int, int]], int]:
        """``([(pid, tid) per vCPU], 1)``: each vCPU has its own thread in this process."""
        pid = os.getpid()
        return [(pid, t.native_id or 0) for t in self._threads], 1

    def stats(self) -> dict[str, Any]:
        """Counters for logs and tests: exits per vCPU by kind, unmapped accesses, notifies."""
        dm = self._devices
        out: dict[str, Any] = {
            "vcpus": {t.index: dict(self._dispatchers[t.index].counts) for t in self._threads},
        }
        if dm is not None:
            out["pio_unmapped"] = vars(dm.pio.unmapped).copy()
            out["mmio_unmapped"] = vars(dm.mmio.unmapped).copy()
            out["queue_notifies"] = dm.io_thread.dispatched
        return out

    # -- building ---------------------------------------------------------------------------

    def _build(self) -> None:
        cfg = self.config
        cpus = cfg.topology.cpus()
        boot = self._boot or self._linux_boot()
        cpuid_for = cpuid_for_topology(cfg.topology)
        if self._perf is not None:
            cpuid_for = self._perf.cpuid(cpuid_for)
        m = self._machine = Machine.create(
            cfg.guest_ram_path,
            cfg.mem_mib << 20,
            [c.apic_id for c in cpus],
            cpuid_for,
            self._kvm_path,
            before_vcpus=self._before_vcpus,
        )
        assert m.vm is not None and m.mem is not None
        if self._perf is not None:
            self._perf.huge_pages(m.mem)
        dm = self._devices = DeviceManager(
            m.vm, self._on_stream, self._shutdown, self._device_failed, tick=self._batcher.flush
        )
        dm.add_legacy()
        virtio = dm.add_virtio_console(m.mem)
        self.plan = plan = boot.prepare(m.mem, m.mem.size, len(cpus), virtio)
        apply_entry(m.vcpus[0], plan.bsp)
        for vcpu, entry in zip(m.vcpus[1:], plan.aps, strict=True):
            if entry is not None:
                apply_entry(vcpu, entry, make_runnable=True)
        self._make_threads(m, dm)

    def _build_restored(self, source: RestoreFrom) -> None:
        from vmm_proc.engines.kvm import snapshot_store, snapshotting

        cfg = self.config
        apic_ids = [c.apic_id for c in cfg.topology.cpus()]
        try:
            loaded = snapshot_store.load(source.directory, source.key)
            snapshotting.check_fits(loaded.state, cfg.mem_mib << 20, apic_ids)
        except SnapshotError as exc:
            raise SnapshotRefused(source.directory, str(exc)) from None
        m = self._machine = Machine.create(
            cfg.guest_ram_path,
            cfg.mem_mib << 20,
            apic_ids,
            None,
            self._kvm_path,
            memory=lambda: _restored_memory(loaded, cfg.guest_ram_path, source.private_memory),
            before_vcpus=self._before_vcpus,
        )
        assert m.vm is not None and m.mem is not None
        if self._perf is not None:
            self._perf.huge_pages(m.mem)
        dm = self._devices = DeviceManager(
            m.vm, self._on_stream, self._shutdown, self._device_failed, tick=self._batcher.flush
        )
        dm.restore_from(loaded.state.devices)
        dm.add_legacy()
        dm.add_virtio_console(m.mem)
        snapshotting.apply(m, loaded.state)
        self.restored_extra = dict(loaded.state.meta.extra)
        self._make_threads(m, dm)

    def snapshot(
        self,
        directory: str,
        key: dict[str, str],
        extra: dict[str, str] | None = None,
        resume: bool = True,
    ) -> float:
        """Pause every vCPU, save VM, vCPUs, devices and RAM as ``directory``, then resume.

        :param key: what the snapshot is valid for (checked by ``RestoreFrom``).
        :param extra: caller data carried along (``restored_extra`` after a restore).
        :return: seconds the guest was paused.
        :raises EngineError: the VM is not running, a vCPU would not pause, or saving failed.
        """
        from vmm_proc.engines.kvm import snapshot_store, snapshotting

        m, dm = self._machine, self._devices
        if m is None or dm is None or m.mem is None or self._state != "running":
            raise EngineError(f"kvm engine: cannot snapshot in state {self._state}")
        t0 = time.monotonic()
        paused = []
        try:
            for t in self._threads:
                reply = t.send(VcpuEvent.PAUSE, _CONTROL_S)
                if reply.response is not VcpuResponse.PAUSED:
                    raise EngineError(f"kvm engine: vcpu{t.index} did not pause: {reply.reason}")
                paused.append(t)
            self._batcher.flush()
            snap = snapshotting.capture(m, dm.state(), key, extra)
            snapshot_store.save(directory, snap, m.mem.path)
        except (KvmError, OSError, VcpuThreadError) as exc:
            raise EngineError(f"kvm engine: snapshot failed: {exc}") from exc
        finally:
            if resume:
                for t in paused:
                    t.send(VcpuEvent.RESUME, _CONTROL_S)
        return time.monotonic() - t0

    def resume(self) -> None:
        """Resume every vCPU after ``snapshot(resume=False)``."""
        for t in self._threads:
            t.send(VcpuEvent.RESUME, _CONTROL_S)

    def _before_vcpus(self, m: Machine) -> None:
        """VM-wide setup KVM takes only before the first vCPU."""
        if self._perf is not None and m.vm is not None:
            self._perf.disable_exits(m.vm)

    def _make_threads(self, m: Machine, dm: DeviceManager) -> None:
        self._dispatchers = [
            ExitDispatcher(i, dm.pio, dm.mmio, self._shutdown) for i in range(len(m.vcpus))
        ]
        self._threads = [
            VcpuThread(i, vcpu, self._dispatchers[i], self._vcpu_stopped)
            for i, vcpu in enumerate(m.vcpus)
        ]

    def _linux_boot(self) -> Boot:
        from vmm_proc.engines.kvm.linux_boot import LinuxBoot  # only needed for real kernels

        return LinuxBoot(self.config)

    def _launch(self) -> None:
        assert self._devices is not None
        self._devices.start()
        for t in self._threads:
            t.start()
        with self._lock:
            self._state = "running"
        self._watchdog = Watchdog(self.config.timeout_s, self._on_timeout)
        self._watchdog.start()
        for t in self._threads:
            try:
                reply = t.send(VcpuEvent.RESUME, _CONTROL_S)
            except VcpuThreadError as exc:
                self.stop(ExitReason.ERROR)
                raise EngineError(f"kvm engine: {exc}") from exc
            if reply.response is not VcpuResponse.RESUMED and self._stop_cause is None:
                self.stop(ExitReason.ERROR)
                raise EngineError(f"kvm engine: vcpu{t.index} did not resume: {reply.reason}")

    # -- events from threads ---------------------------------------------------------------

    def _on_stream(self, name: str, data: bytes) -> None:
        if name == "console":
            for line in self._tail.feed(data):
                # Console lines that change what a later reset or triple fault means.
                if kernel_console.is_panic(line):
                    self._shutdown.mark_panic(_message(line))
                elif kernel_console.CLEAN_MARK in line:
                    self._shutdown.set(_message(line))
        if name in _BATCHED:
            self._batcher.write(name, data)
        else:
            self._hooks.stream(name, data)

    def _vcpu_stopped(self, index: int, stop: VcpuStop) -> None:
        self._begin_stop(stop.reason, stop.detail)

    def _device_failed(self, detail: str) -> None:
        self._begin_stop(ExitReason.ERROR, detail)

    def _on_timeout(self) -> None:
        title = f"no guest exit within {self.config.timeout_s:g}s"
        try:
            report = format_stuck_report(title, self._snapshot(), self._tail.lines())
            self._batcher.flush()
            self._hooks.stream("diag", report)
        finally:
            self._begin_stop(ExitReason.TIMEOUT, title)

    def _snapshot(self) -> list[VcpuSnapshot]:
        """Pause every vCPU and read its registers (a paused thread is outside KVM_RUN)."""
        m = self._machine
        out = []
        for t in self._threads:
            try:
                t.send(VcpuEvent.PAUSE, _CONTROL_S)
                if t.alive and m is not None:
                    vcpu = m.vcpus[t.index]
                    out.append(
                        VcpuSnapshot(
                            t.index, t.state.value, t.exits, vcpu.get_regs(), vcpu.get_sregs()
                        )
                    )
                    continue
                out.append(VcpuSnapshot(t.index, t.state.value, t.exits, error="thread ended"))
            except (VcpuThreadError, KvmError) as exc:
                out.append(VcpuSnapshot(t.index, t.state.value, t.exits, error=str(exc)))
        return out

    # -- stopping ---------------------------------------------------------------------------

    def _begin_stop(self, reason: ExitReason, detail: str) -> None:
        with self._lock:
            if self._state != "running":
                return
            self._state = "stopping"
            self._stop_cause = (reason, detail)
            self._teardown_thread = threading.Thread(
                target=self._teardown, name="vmm-teardown", daemon=True
            )
            self._teardown_thread.start()

    def _teardown(self) -> None:
        assert self._stop_cause is not None
        reason, detail = self._stop_cause
        problems: list[str] = []
        try:
            if self._watchdog is not None:
                self._watchdog.cancel()
            for t in self._threads:
                try:
                    t.finish(_JOIN_S)
                except VcpuThreadError as exc:
                    problems.append(str(exc))
            if self._devices is not None:
                try:
                    self._devices.close(_JOIN_S)
                except IoThreadError as exc:
                    problems.append(str(exc))
        finally:
            if problems:
                detail = f"{detail}; teardown: {'; '.join(problems)}"
                log.error("kvm engine teardown: %s", "; ".join(problems))
            self._batcher.flush()
            self._hooks.exited(reason, detail)

    def _release(self) -> None:
        """Free KVM fds and RAM; vCPUs whose thread is still alive are left mapped (never
        unmap a kvm_run page under a running thread)."""
        with self._lock:
            if self._state == "closed":
                return
            self._state = "closed"
        if self._perf is not None:
            self._perf.release()
        if self._devices is not None:
            try:
                self._devices.close(_JOIN_S)
            except IoThreadError as exc:
                log.error("kvm engine close: %s", exc)
        m = self._machine
        if m is not None:
            stuck = {t.index for t in self._threads if t.alive}
            if stuck:
                log.error("kvm engine close: vcpu threads %s still alive; their fds leak", stuck)
                m.vcpus = [v for i, v in enumerate(m.vcpus) if i not in stuck]
            m.close()


def _restored_memory(loaded: LoadedSnapshot, shared_path: str, private: bool) -> GuestMemory:
    """The snapshot's RAM copy-on-write, or copied into a new shared file others can map."""
    size = loaded.state.meta.mem_bytes
    if private:
        return GuestMemory.open_private(loaded.memory, size)
    return GuestMemory.create_from(shared_path, loaded.memory, size)
