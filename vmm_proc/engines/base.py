"""The contract between the vmm_proc service and a VM engine (QEMU or KVM).

The engine owns the VM and its threads; the service owns the bus. Everything the engine
produces reaches the service through ``EngineHooks``, whose methods are thread-safe, so an
engine may call them from vCPU or reader threads.
"""

from __future__ import annotations

from typing import Any, Protocol

from schedlab_shared.bus.vmm import ExitReason

__all__ = ("EngineHooks", "Engine", "EngineError", "SnapshotRefused")


class EngineError(Exception):
    """The engine could not start or run the VM; the message is one line for the user."""


class SnapshotRefused(EngineError):
    """A snapshot could not be used; the caller discards it and boots cold."""

    def __init__(self, directory: str, why: str) -> None:
        super().__init__(f"snapshot {directory} refused: {why}; falling back to a cold boot")
        self.directory = directory
        self.why = why


class EngineHooks(Protocol):
    def stream(self, name: str, data: bytes) -> None:
        """Bytes the guest emitted on stream ``name`` (one of ``schedlab_shared.bus.vmm.STREAMS``), in order."""

    def exited(self, reason: ExitReason, detail: str) -> None:
        """The VM is gone; called exactly once."""


class Engine(Protocol):
    name: str

    def start(self) -> None:
        """Boot the VM; returns once it runs (raises EngineError otherwise)."""

    def memory_layout(self) -> list[dict[str, Any]]:
        """Guest RAM regions: ``{"gpa", "size", "path", "offset"}`` each."""

    def send_console(self, data: bytes) -> None:
        """Host-to-guest bytes on the console port (guest /dev/hvc0)."""

    def send_bulk(self, data: bytes, timeout_s: float) -> int:
        """Host-to-guest bytes on the bulk port, flow-controlled: take what fits in the
        engine's bounded buffer, waiting up to ``timeout_s`` for room; return how many were
        taken (raise EngineError if the port is gone)."""

    def send_shell(self, data: bytes, timeout_s: float) -> int:
        """Host-to-guest bytes on the shell port, flow-controlled as :meth:`send_bulk`."""

    def bulk_pending(self) -> int:
        """Host-to-guest bulk bytes taken but not yet read by the guest's driver."""

    def vcpu_threads(self) -> tuple[list[tuple[int, int]], int]:
        """``([(pid, tid) of each vCPU's host thread], vCPUs per thread)``; ``[]`` when the
        engine cannot name them (yet)."""

    def stop(self, reason: ExitReason) -> None:
        """Stop the VM (idempotent, bounded in time); ``exited`` follows."""

    def close(self) -> None:
        """Release everything: processes, threads, the guest RAM file."""
