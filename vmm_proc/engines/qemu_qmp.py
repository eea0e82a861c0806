"""QEMU's vCPU thread ids, through QMP (``query-cpus-fast``) with the ``qemu.qmp`` library.

The QEMU engine starts QEMU with a QMP server socket in its runtime directory; the ids are
asked once (they do not change while QEMU runs) and cached by the engine.
"""

from __future__ import annotations

import logging
import time

__all__ = ("QmpError", "vcpu_thread_ids")

log = logging.getLogger(__name__)


class QmpError(Exception):
    """QMP did not answer, or answered something that is not a CPU list."""


def vcpu_thread_ids(path: str, nr_cpus: int, timeout_s: float = 5.0) -> list[int]:
    """Host thread id of each vCPU, by CPU index.

    :param path: QEMU's QMP unix socket.
    :param nr_cpus: the vCPUs QEMU was given (the reply must list exactly these).
    :raises QmpError: no connection within ``timeout_s``, or a malformed reply.
    """
    from qemu.qmp.legacy import QEMUMonitorProtocol  # only the QEMU engine needs it

    deadline = time.monotonic() + timeout_s
    while True:
        qmp = QEMUMonitorProtocol(path)
        try:
            qmp.settimeout(max(0.1, deadline - time.monotonic()))
            qmp.connect()
            cpus = qmp.cmd("query-cpus-fast")
            break
        except (OSError, Exception) as exc:  # qemu.qmp raises its own error classes
            if time.monotonic() >= deadline:
                raise QmpError(f"QMP at {path}: {exc}") from exc
            time.sleep(0.1)
        finally:
            qmp.close()
    return _thread_ids(cpus, nr_cpus)


def _thread_ids(cpus: object, nr_cpus: int) -> list[int]:
    if not isinstance(cpus, list) or len(cpus) != nr_cpus:
        raise QmpError(f"query-cpus-fast returned {cpus!r:.200}, expected {nr_cpus} CPUs")
    by_index: dict[int, int] = {}
    for c in cpus:
        idx, tid = (c.get("cpu-index"), c.get("thread-id")) if isinstance(c, dict) else (None, None)
        if not isinstance(idx, int) or not isinstance(tid, int) or not 0 <= idx < nr_cpus:
            raise QmpError(f"query-cpus-fast entry {c!r:.200} lacks cpu-index/thread-id")
        by_index[idx] = tid
    if len(by_index) != nr_cpus:
        raise QmpError("query-cpus-fast lists a CPU index twice")
    return [by_index[i] for i in range(nr_cpus)]
