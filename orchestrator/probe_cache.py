"""The KVM probe's answer, remembered for the rest of this boot.

Whether /dev/kvm runs guest kernel code in hardware does not change while the machine
runs, and the probe (a child process with a micro-guest) costs a third of a second per
command. The answer is kept per boot (``/proc/sys/kernel/random/boot_id``) and per
/dev/kvm node (device, inode, ctime: a chmod or a re-created node re-probes), and only
when it is definite (hardware or emulated); "unavailable" is always probed again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from schedlab_shared.cache import cache_root
from schedlab_shared.kvm_probe import ProbeResult

__all__ = ("KVM_DEV", "cached_probe", "probe_key")

KVM_DEV = "/dev/kvm"
_CACHEABLE = ("hardware", "emulated")


def probe_key(
    dev: str = KVM_DEV, boot_id_file: str = "/proc/sys/kernel/random/boot_id"
) -> str | None:
    """What the answer depends on, or None when it cannot be known (then: probe)."""
    try:
        boot_id = Path(boot_id_file).read_text().strip()
        st = os.stat(dev)
    except OSError:
        return None
    if not os.access(dev, os.R_OK | os.W_OK):
        return None
    return f"{boot_id}:{st.st_rdev}:{st.st_ino}:{st.st_ctime_ns}:{os.getuid()}"


def _store() -> Path:
    return cache_root() / "kvm-probe.json"


def cached_probe(
    run: Callable[[], ProbeResult], *, key: str | None = None, store: Path | None = None
) -> ProbeResult:
    """``run()``'s result, or the one remembered for ``key`` (default: :func:`probe_key`)."""
    key = probe_key() if key is None else key
    path = store or _store()
    if key is None:
        return run()
    try:
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            hit = ProbeResult.from_json(json.dumps(saved["result"]))
            if hit.kind in _CACHEABLE:
                return ProbeResult(
                    hit.kind, hit.ns_per_iteration, f"{hit.reason} (probed earlier this boot)"
                )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    result = run()
    if result.kind in _CACHEABLE:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"key": key, "result": json.loads(result.to_json())}))
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs the next command a probe
    return result
