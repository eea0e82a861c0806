"""Tier 3: a real build of every example scheduler for the default kernel, then a cache hit.

The build goes to a private cache root (the shared one is left alone while other runs use
it) that borrows the real kernel cache, apt state and linux-source tree through symlinks,
so only the compile is repeated. Each binary must run ``-h`` on this host: they link
libbpf statically but libelf, libz and libc dynamically (FACTS §4b).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestrator.initramfs.elfdeps import elf_deps
from orchestrator.kernel.resolve import resolve_kernel
from orchestrator.scheduler.cache import ensure_built
from orchestrator.scheduler.examples import EXAMPLE_NAMES, EXAMPLES
from orchestrator.scheduler.hostrun import run_help, write_raw_btf
from orchestrator.scheduler.resolve import resolve_scheduler
from orchestrator.scheduler.source import schedulers_dir
from schedlab_shared.cache import cache_root

pytestmark = pytest.mark.slow


def _written_since(root: Path, since: float) -> list[str]:
    # tar keeps the archive's mtimes, so a tree extracted during the build still passes
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.lstat().st_mtime > since and p.name != ".schedlab-source.json"
    ]


@pytest.fixture()
def private_cache(tmp_path, monkeypatch):
    real = cache_root()
    kernel = resolve_kernel(None)  # fetched into the real cache if it is not there yet
    for sub in ("schedulers/source", "tools"):
        (real / sub).mkdir(parents=True, exist_ok=True)
    root = tmp_path / "cache"
    (root / "schedulers").mkdir(parents=True)
    (root / "kernels").symlink_to(real / "kernels")
    (root / "tools").symlink_to(real / "tools")
    (root / "schedulers/source").symlink_to(real / "schedulers/source")
    monkeypatch.setenv("SCHEDLAB_CACHE", str(root))
    return resolve_kernel(kernel.version)


def test_build_every_example_then_hit(private_cache, tmp_path):
    kernel = private_cache
    wall0 = time.time()
    t0 = time.monotonic()
    built = ensure_built(kernel, progress=print)
    cold = time.monotonic() - t0
    assert not built.hit and set(built.schedulers) == set(EXAMPLE_NAMES)
    assert built.root == schedulers_dir() / kernel.version
    assert built.manifest["source"]["package"] == "linux-source-" + ".".join(
        kernel.version.split(".")[:2]
    )
    btf = tmp_path / "btf.raw"
    write_raw_btf(kernel.vmlinux, btf)
    for name, s in built.schedulers.items():
        deps = elf_deps(s.path)
        assert deps.machine == "EM_X86_64" and os.access(s.path, os.X_OK)
        assert {"libelf.so.1", "libz.so.1", "libc.so.6"} <= set(deps.needed)
        assert s.ops == EXAMPLES[name].ops, name
        run = run_help(s.path, btf)
        assert "error while loading shared libraries" not in run.output, run.output
        if name == "scx_userland":  # switches itself to SCHED_EXT before parsing options
            assert run.returncode == 0 or "SCHED_EXT" in run.output, run.output
        else:
            assert run.returncode == 0 and f"Usage: {name}" in run.output, run.output
    qmap = built.schedulers["scx_qmap"].usage
    assert {"-e", "-t", "-T", "-l", "-p"} <= {o.short for o in qmap.options}
    source = built.manifest["source"]
    tree = schedulers_dir() / "source" / f"{source['package']}_{source['version']}"
    assert tree.is_dir() and _written_since(tree, wall0) == []  # read, never written

    t1 = time.monotonic()
    again = ensure_built(kernel)
    hit = time.monotonic() - t1
    assert again.hit and again.manifest == built.manifest and hit < 1.0
    launch = resolve_scheduler("scx_qmap", kernel, flags=["bpf-error"])
    assert (
        launch.argv[1:] == ("-e", "100")
        and launch.files[0].path == again.schedulers["scx_qmap"].path
    )
    print(
        f"figures: cold build {cold:.1f} s (phases {built.manifest['timings_s']}), "
        f"cache hit {hit * 1000:.2f} ms"
    )
