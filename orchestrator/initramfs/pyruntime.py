"""The guest's Python: the host interpreter, its libraries and a minimal stdlib.

Guest layout (prefix ``/usr``, so the interpreter finds its stdlib with no environment):

- ``/usr/bin/python3``: the running interpreter (``sys.executable`` resolved);
- ``/lib/x86_64-linux-gnu/<soname>``: every shared library from ``DT_NEEDED``, recursively
  (a default loader directory, so host ``RUNPATH`` values do not matter);
- the ELF interpreter at its ``PT_INTERP`` path (``/lib64/ld-linux-x86-64.so.2``);
- ``/usr/lib/python3.X/``: sourceless ``.pyc`` of the modules the guest package imports
  (:mod:`modulefinder` over its sources plus :data:`BASE_MODULES`), third-party packages
  (msgpack) flattened into the same directory, and ``lib-dynload/*.so`` extensions.

ELF files are stripped with ``strip --strip-unneeded`` when available (libpython shrinks
from 22 MB to about 4 MB).

>>> rt = collect_runtime(Path("guest"))     # ~16.6 MB stripped (40 MB unstripped), ~190 files
>>> rt.files["usr/bin/python3"][1]
493
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import modulefinder
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.initramfs.elfdeps import resolve_libraries
from schedlab_shared.cache import tools_dir

__all__ = (
    "BASE_MODULES",
    "EXCLUDED_MODULES",
    "PythonRuntime",
    "collect_runtime",
    "compile_pyc",
    "find_modules",
    "find_modules_cached",
    "runtime_fingerprint",
)

PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"
GUEST_PYTHON = "/usr/bin/python3"
GUEST_STDLIB = f"usr/lib/python{PYVER}"
GUEST_LIBDIR = "lib/x86_64-linux-gnu"

#: Modules every guest gets whether or not the guest package imports them.
BASE_MODULES = (
    "encodings",
    "encodings.utf_8",
    "encodings.latin_1",
    "encodings.ascii",
    "encodings.aliases",
    "encodings.utf_8_sig",
    "codecs",
    "io",
    "abc",
    "os",
    "posixpath",
    "stat",
    "struct",
    "zlib",
    "binascii",
    "ctypes",
    "signal",
    "select",
    "errno",
    "time",
    "traceback",
    "json",
    "base64",
    "dataclasses",
    "enum",
    "typing",
    "collections",
    "functools",
    "fcntl",
    "mmap",
    "msgpack",
    "threading",
    "pathlib",
    "resource",
    "subprocess",
    "contextlib",
    "itertools",
    "math",
)
#: Never shipped: test suites, GUI, packaging, and libcrypto's 5 MB (hashlib falls back).
EXCLUDED_MODULES = (
    "tkinter",
    "test",
    "idlelib",
    "lib2to3",
    "pydoc",
    "pydoc_data",
    "unittest",
    "distutils",
    "setuptools",
    "pip",
    "_pytest",
    "pytest",
    "doctest",
    "ensurepip",
    "_hashlib",
    "_ssl",
    "ssl",
    "sqlite3",
    "_sqlite3",
    "curses",
    "_curses",
    "turtle",
    "_pydecimal",
    "_tkinter",
    "readline",
    "_ctypes_test",
    "_testcapi",
)
_PYC_FLAGS = (0b01).to_bytes(4, "little")  # hash-based, unchecked (PEP 552): never stale-checked


@dataclass
class PythonRuntime:
    """Files of the guest runtime: guest path (no leading ``/``) -> (content, mode)."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)

    @property
    def total_size(self) -> int:
        return sum(len(data) for data, _ in self.files.values())

    def add(self, dest: str, data: bytes, mode: int = 0o644) -> None:
        self.files[dest.lstrip("/")] = (data, mode)


def compile_pyc(source: bytes, guest_filename: str) -> bytes:
    """Compile Python source to ``.pyc`` bytes (unchecked hash-based, so deterministic).

    :param guest_filename: the path shown in guest tracebacks.
    """
    code = compile(source, guest_filename, "exec", dont_inherit=True, optimize=0)
    digest = importlib.util.source_hash(source)
    return importlib.util.MAGIC_NUMBER + _PYC_FLAGS + digest + marshal.dumps(code)


def runtime_fingerprint() -> str:
    """A cheap hash of what :func:`collect_runtime` depends on (for image cache keys)."""
    h = hashlib.sha256()
    exe = Path(sys.executable).resolve()
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "/")
    msgpack_spec = importlib.util.find_spec("msgpack")
    watched = [
        exe,
        libdir / str(sysconfig.get_config_var("INSTSONAME") or "none"),
        Path(__file__),
        Path(modulefinder.__file__),
    ]
    if msgpack_spec and msgpack_spec.origin:
        watched.append(Path(msgpack_spec.origin))
    h.update(sys.version.encode())
    for path in watched:
        try:
            st = path.stat()
            h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"{path}:missing".encode())
    h.update(repr((BASE_MODULES, EXCLUDED_MODULES)).encode())
    return h.hexdigest()


def find_modules(guest_src: Path) -> dict[str, Path]:
    """Module name -> host file for :data:`BASE_MODULES` and everything ``guest_src`` imports.

    Built-in modules (no file) and the guest package itself are left out.
    """
    finder = modulefinder.ModuleFinder(
        path=[str(guest_src.parent), *sys.path], excludes=list(EXCLUDED_MODULES)
    )
    with tempfile.TemporaryDirectory(prefix="schedlab-mf-") as tmp:
        script = Path(tmp) / "base.py"
        script.write_text("".join(f"import {m}\n" for m in BASE_MODULES))
        finder.run_script(str(script))
    for src in sorted(guest_src.rglob("*.py")):
        finder.run_script(str(src))
    guest_pkg = guest_src.name
    found = {}
    for name, mod in finder.modules.items():
        file = getattr(mod, "__file__", None)  # modulefinder.Module: set, but not typed
        if file and name != "__main__" and name.split(".")[0] != guest_pkg:
            found[name] = Path(file)
    return found


def _sources_digest(guest_src: Path) -> str:
    h = hashlib.sha256(runtime_fingerprint().encode())
    for src in sorted(guest_src.rglob("*.py")):
        h.update(f"\0{src.relative_to(guest_src)}\0".encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:32]


def find_modules_cached(guest_src: Path) -> dict[str, Path]:
    """:func:`find_modules`, memoized on disk by guest sources and runtime fingerprint."""
    memo = tools_dir() / "modulefinder" / f"{_sources_digest(guest_src)}.json"
    try:
        found = {k: Path(v) for k, v in json.loads(memo.read_text()).items()}
        if all(p.is_file() for p in found.values()):
            return found
    except (OSError, ValueError):
        pass
    found = find_modules(guest_src)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({k: str(v) for k, v in sorted(found.items())}))
    tmp.replace(memo)
    return found


def _guest_dest(host: Path, stdlib: Path, dynload: Path, roots: list[Path]) -> str | None:
    """Guest path of a module file, or None if it lives outside every import root."""
    if host.is_relative_to(dynload):
        return f"{GUEST_STDLIB}/lib-dynload/{host.relative_to(dynload).as_posix()}"
    for root in roots:  # longest first: site-packages before the stdlib that contains it
        if host.is_relative_to(root):
            return f"{GUEST_STDLIB}/{host.relative_to(root).as_posix()}"
    return None


def _strip(data: bytes, name: str) -> bytes:
    tool = shutil.which("strip")
    if tool is None:
        return data
    with tempfile.TemporaryDirectory(prefix="schedlab-strip-") as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        src.write_bytes(data)
        res = subprocess.run(
            [tool, "--strip-unneeded", "-o", str(dst), str(src)], capture_output=True, check=False
        )
        return dst.read_bytes() if res.returncode == 0 else data


def _memoized(path: Path, kind: str, make: Callable[[bytes], bytes]) -> bytes:
    """``make(content of path)``, cached on disk by (path, size, mtime) across builds."""
    real = path.resolve()
    st = real.stat()
    key = hashlib.sha256(f"{kind}:{real}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:32]
    cached = tools_dir() / "runtime-cache" / kind / key
    try:
        return cached.read_bytes()
    except FileNotFoundError:
        pass
    data = make(real.read_bytes())
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{key}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(cached)
    return data


def _elf_bytes(path: Path, strip: bool) -> bytes:
    """Content of an ELF file, stripped when asked (memoized)."""
    if not strip:
        return path.resolve().read_bytes()
    return _memoized(path, "strip", lambda data: _strip(data, path.name))


def _pyc_maker(guest_filename: str) -> Callable[[bytes], bytes]:
    return lambda source: compile_pyc(source, guest_filename)


def _import_roots() -> tuple[Path, Path, list[Path]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    dynload = stdlib / "lib-dynload"
    roots = {Path(p).resolve() for p in sys.path if p and Path(p).is_dir()} | {stdlib}
    return stdlib, dynload, sorted(roots, key=lambda p: len(p.parts), reverse=True)


def collect_runtime(
    guest_src: Path, *, strip: bool = True, extensions: dict[str, Path] | None = None
) -> PythonRuntime:
    """Collect the interpreter, libraries and stdlib subset for a guest package.

    :param guest_src: the guest package directory (its imports decide the stdlib subset).
    :param strip: strip ELF files (smaller image; needs binutils' ``strip``).
    :param extensions: more extension modules, guest path -> host file (the native work
        loops); their libraries are resolved with the interpreter's.
    :return: the runtime files keyed by guest path.
    """
    rt = PythonRuntime()
    exe = Path(sys.executable).resolve()
    stdlib, dynload, roots = _import_roots()
    modules = find_modules_cached(guest_src)
    ext_files = []
    for name, host in sorted(modules.items()):
        dest = _guest_dest(host.resolve(), stdlib, dynload, roots)
        if dest is None:
            continue
        rt.modules.append(name)
        if host.suffix == ".py":
            rt.add(dest[:-3] + ".pyc", _memoized(host, f"pyc-{PYVER}", _pyc_maker("/" + dest)))
        elif host.suffix == ".so":
            rt.add(dest, _elf_bytes(host, strip), 0o755)
            ext_files.append(host)
    for dest, host in sorted((extensions or {}).items()):
        rt.add(dest, _elf_bytes(host, strip), 0o755)
        ext_files.append(host)
    libs, interp = resolve_libraries([exe, *ext_files])
    rt.add(GUEST_PYTHON, _elf_bytes(exe, strip), 0o755)
    for soname, host in sorted(libs.items()):
        rt.add(f"{GUEST_LIBDIR}/{soname}", _elf_bytes(host, strip), 0o755)
    if interp is not None:
        rt.add(str(interp), interp.resolve().read_bytes(), 0o755)  # ld.so: never strip
    return rt
