"""Build ``_schedlab_work`` (cffi, API mode, out of line) for this interpreter, cached.

The guest runs the host's own Python (the initramfs copies it), so one build serves the host's
unit tests and the guest. The build is keyed by what decides its bytes (the C source, the
cdef, the interpreter, cffi, the compiler and the flags) and kept under
``~/.cache/schedlab/native/<key>/``; a hit costs a stat.

>>> so = build_native()
>>> so.name
'_schedlab_work.cpython-311-x86_64-linux-gnu.so'
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from schedlab_shared.cache import cache_root

__all__ = ("MODULE", "NativeBuildError", "build_key", "build_native", "image_files", "source_dir")

MODULE = "_schedlab_work"
#: Where the guest finds it: on sys.path (``/usr/lib/schedlab``, beside the guest package).
GUEST_DIR = "usr/lib/schedlab"
_CFLAGS = ("-O2", "-Wall", "-Wno-unused-parameter", "-fno-strict-aliasing")


class NativeBuildError(OSError):
    """The extension could not be built (no compiler, a compile error); one line for the user.

    An OSError, as a missing tool is: the image builder's callers report those as setup errors.
    """


def source_dir() -> Path:
    """``guest/native`` of this checkout (the C source and its cdef)."""
    from orchestrator.initramfs.builder import default_guest_src

    return default_guest_src() / "native"


def _compiler_id() -> str:
    cc = shutil.which(os.environ.get("CC", "gcc"))
    if cc is None:
        return "none"
    try:
        out = subprocess.run([cc, "-dumpfullversion"], capture_output=True, text=True, timeout=30)
        return f"{cc}:{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return f"{cc}:?"


def build_key(src: Path | None = None) -> str:
    """Hash of everything the build's bytes depend on."""
    import cffi

    src = src or source_dir()
    h = hashlib.sha256()
    for name in ("work.c", "work.cdef"):
        h.update(name.encode() + b"\0" + (src / name).read_bytes() + b"\0")
    h.update(f"{sys.version}\0{sys.executable}\0{cffi.__version__}\0{_compiler_id()}".encode())
    h.update(repr(_CFLAGS).encode())
    return h.hexdigest()[:24]


def _ext_name() -> str:
    return MODULE + str(sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def build_native(src: Path | None = None, out_root: Path | None = None) -> Path:
    """The built extension (compiled on a cache miss).

    :param src: directory with ``work.c`` and ``work.cdef`` (default: :func:`source_dir`).
    :param out_root: cache root (default ``~/.cache/schedlab/native``).
    :raises NativeBuildError: no C compiler, or the compile failed (its last lines).
    """
    import cffi

    src = src or source_dir()
    key = build_key(src)
    out_dir = (out_root or cache_root() / "native") / key
    so = out_dir / _ext_name()
    if so.is_file():
        return so
    if shutil.which(os.environ.get("CC", "gcc")) is None:
        raise NativeBuildError(
            "no C compiler (gcc) to build the native work loops: apt-get install gcc"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="schedlab-native-", dir=out_dir) as tmp:
        ffi = cffi.FFI()
        ffi.cdef((src / "work.cdef").read_text())
        ffi.set_source(MODULE, (src / "work.c").read_text(), extra_compile_args=list(_CFLAGS))
        try:
            built = Path(ffi.compile(tmpdir=tmp, verbose=False))
        except Exception as exc:  # distutils raises CompileError/LinkError/... - all mean "failed"
            raise NativeBuildError(f"building {MODULE} failed: {str(exc).strip()[-400:]}") from None
        tmp_so = so.with_name(f".{so.name}.{os.getpid()}")
        shutil.copyfile(built, tmp_so)
        tmp_so.replace(so)  # atomic: a concurrent build of the same key writes the same bytes
    return so


def image_files(so: Path | None = None) -> dict[str, Path]:
    """Guest path -> host file: the extension and the cffi runtime module it imports.

    Their shared libraries are resolved and packed by the image builder like any extension's.
    """
    so = so or build_native()
    backend = importlib.util.find_spec("_cffi_backend")
    if backend is None or not backend.origin:
        raise NativeBuildError(
            "the cffi runtime (_cffi_backend) is not installed: pip install cffi"
        )
    origin = Path(backend.origin)
    return {f"{GUEST_DIR}/{so.name}": so, f"{GUEST_DIR}/{origin.name}": origin}
