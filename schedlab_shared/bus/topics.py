"""Topic names of published events; prefixes match as ZeroMQ subscriptions do."""

from __future__ import annotations

__all__ = ("stream", "vm_state", "guest", "monitor_sample", "vm_prefix")


def vm_prefix(vm_id: str) -> str:
    return f"vm.{vm_id}."


def stream(vm_id: str, name: str) -> str:
    """Bytes of one guest stream (console, diag, hvc0, bulk)."""
    return f"vm.{vm_id}.stream.{name}"


def vm_state(vm_id: str) -> str:
    return f"vm.{vm_id}.state"


def guest(vm_id: str, frame_type: str = "") -> str:
    """Decoded guest messages, republished by the collector."""
    return f"vm.{vm_id}.guest.{frame_type}" if frame_type else f"vm.{vm_id}.guest."


def monitor_sample(vm_id: str) -> str:
    return f"vm.{vm_id}.monitor.sample"
