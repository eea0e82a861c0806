"""The files of a run directory: every name defined here, written and read through it.

The collector writes the stream and message files, each monitor its samples, the
orchestrator the configuration, the endpoints of a live run, the process logs and the
result; tests and ``schedlab attach`` read them. Names never change meaning between
versions: a reader of an older run directory finds the same files.
"""

from __future__ import annotations

from pathlib import Path

from schedlab_shared.bus.vmm import Stream

__all__ = (
    "CONSOLE",
    "DIAG",
    "HVC0",
    "BULK",
    "SHELL",
    "STREAM_FILES",
    "GUEST_STDOUT",
    "GUEST_STDERR",
    "KERNEL_LOG",
    "DUMPS",
    "SCHED_LOG",
    "SCHED_EXT_DUMP",
    "MESSAGES",
    "REJECTED",
    "COLLECTOR_FILES",
    "COLLECTOR_STATE",
    "RESULT",
    "SCHED_DEBUG_DUMP",
    "ENDPOINTS",
    "VM_CONFIG",
    "SUPERVISORD_LOG",
    "MONITOR_GLOB",
    "monitor_file",
    "monitor_files",
    "process_log",
)

# Raw guest streams, as received from the VMM (collector_proc).
CONSOLE = "console.log"  # COM1: the kernel's console, boot log included
DIAG = "diag.log"  # COM2: crash diagnostics (the guest init's "PANIC: " lines)
HVC0 = "hvc0.log"  # virtio-console port 0
BULK = "bulk.raw"  # the guest wire frames (guest.wire), as received
SHELL = "shell.raw"  # the shell port's frames (schedlab shell), as received
STREAM_FILES: dict[str, str] = {
    Stream.CONSOLE: CONSOLE,
    Stream.DIAG: DIAG,
    Stream.HVC0: HVC0,
    Stream.BULK: BULK,
    Stream.SHELL: SHELL,
}

# Decoded from the bulk stream (collector_proc).
GUEST_STDOUT = "guest-stdout.log"  # the guest init's stdout (STDOUT frames)
GUEST_STDERR = "guest-stderr.log"  # its stderr (STDERR frames)
KERNEL_LOG = "kernel.log"  # the guest kernel's log (DUMP frames of /dev/kmsg), any console
DUMPS = "dumps.log"  # answers to /proc snapshot requests (attach procdump), each under a header
SCHED_LOG = "sched.log"  # the scheduler under test's stdout and stderr (SCHED_LOG frames)
SCHED_EXT_DUMP = "sched_ext_dump.log"  # the kernel's sched_ext state dumps (trace_pipe, SysRq-D)
MESSAGES = "messages.jsonl"  # one decoded guest frame per line
REJECTED = "rejected.jsonl"  # guest frames refused (type, field, why), the first 1000
COLLECTOR_FILES: tuple[str, ...] = (
    *STREAM_FILES.values(),
    GUEST_STDOUT,
    GUEST_STDERR,
    KERNEL_LOG,
    DUMPS,
    SCHED_LOG,
    SCHED_EXT_DUMP,
    MESSAGES,
    REJECTED,
)
COLLECTOR_STATE = "collector-state.json"  # the collector's checkpoint over COLLECTOR_FILES

# Written by the orchestrator.
RESULT = "result.json"  # the result document (``schedlab run --json``'s content)
ENDPOINTS = "endpoints.json"  # where the processes listen; exists only while the run is live
VM_CONFIG = "vm-config.json"  # the VmConfig the VMM was started with
SUPERVISORD_LOG = "supervisord.log"
SCHED_DEBUG_DUMP = "sched_debug_dump.log"  # the scheduler's own DEBUG DUMP, cut from sched.log

# Written by each monitor_proc instance.
MONITOR_GLOB = "monitor-*.jsonl"
_MONITOR_PREFIX, _MONITOR_SUFFIX = "monitor-", ".jsonl"


def monitor_file(name: str) -> str:
    """The samples of the monitor instance ``name``."""
    if not name or "/" in name:
        raise ValueError(f"monitor name {name!r}: must be non-empty and hold no slash")
    return f"{_MONITOR_PREFIX}{name}{_MONITOR_SUFFIX}"


def monitor_files(run_dir: Path) -> dict[str, Path]:
    """Each monitor instance's samples file in ``run_dir``, by instance name, sorted."""
    return {
        p.name.removeprefix(_MONITOR_PREFIX).removesuffix(_MONITOR_SUFFIX): p
        for p in sorted(run_dir.glob(MONITOR_GLOB))
    }


def process_log(program: str) -> str:
    """The log (stdout and stderr) of the supervised program ``program`` ("vmm", "monitor1")."""
    return f"{program}_proc.log"
