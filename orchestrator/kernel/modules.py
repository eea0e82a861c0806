"""Kernel module lookup: names -> files in load order, with dependencies.

Debian's ``linux-modules-*`` packages ship no ``modules.dep`` (depmod runs at install
time), so :func:`write_modules_dep` builds one from each module's ``.modinfo`` section
(``depends=a,b``), in the format of :manpage:`modules.dep(5)`: ``path: dep1 dep2`` with
every transitive dependency listed, the one to load first last.

>>> idx = ModuleIndex(Path("~/.cache/schedlab/kernels/7.2.13+deb14-cloud-amd64/modules"))
>>> idx.load_order(["kvm-amd"])
['kernel/virt/lib/irqbypass.ko.xz', 'kernel/arch/x86/kvm/kvm.ko.xz', 'kernel/arch/x86/kvm/kvm-amd.ko.xz']
>>> ko = idx.read_plain("kernel/arch/x86/kvm/kvm.ko.xz")   # decompressed bytes
"""

from __future__ import annotations

import gzip
import lzma
from io import BytesIO
from pathlib import Path

import zstandard
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

__all__ = (
    "ModuleError",
    "ModuleIndex",
    "decompress_module",
    "module_name",
    "modules_dep_lines",
    "read_modinfo",
    "write_modules_dep",
)

_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")
_MAX_MODULE = 256 << 20


class ModuleError(LookupError):
    """A requested module is unknown, unreadable or has a dependency cycle."""


def module_name(path: str | Path) -> str:
    """The module name of a file (``kvm-amd.ko.xz`` -> ``kvm_amd``)."""
    base = Path(path).name
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def decompress_module(data: bytes, name: str = "module") -> bytes:
    """Return the plain ELF of a ``.ko``, ``.ko.xz``, ``.ko.zst`` or ``.ko.gz`` file content."""
    try:
        if data.startswith(b"\xfd7zXZ\x00"):
            plain = lzma.LZMADecompressor().decompress(data, _MAX_MODULE)
        elif data.startswith(b"\x28\xb5\x2f\xfd"):
            plain = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        elif data.startswith(b"\x1f\x8b"):
            plain = gzip.decompress(data)
        else:
            plain = data
    except (lzma.LZMAError, zstandard.ZstdError, OSError, EOFError) as exc:
        raise ModuleError(f"{name}: does not decompress: {exc}") from exc
    if not plain.startswith(b"\x7fELF"):
        raise ModuleError(f"{name}: not an ELF kernel module")
    return plain


def read_modinfo(plain_ko: bytes) -> dict[str, str]:
    """The ``.modinfo`` key=value pairs of a plain ``.ko`` (repeated keys joined by ``,``)."""
    try:
        section = ELFFile(BytesIO(plain_ko)).get_section_by_name(".modinfo")
    except ELFError as exc:
        raise ModuleError(f"bad module ELF: {exc}") from exc
    info: dict[str, str] = {}
    if section is None:
        return info
    for item in section.data().split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep:
            info[key] = f"{info[key]},{value}" if key in info and value else value
    return info


def _direct_deps(modules_dir: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (relative path, direct dependency names) for every module file."""
    found: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(modules_dir.rglob("*.ko*")):
        if not path.name.endswith(_SUFFIXES):
            continue
        rel = path.relative_to(modules_dir).as_posix()
        info = read_modinfo(decompress_module(path.read_bytes(), rel))
        deps = [d.replace("-", "_") for d in info.get("depends", "").split(",") if d]
        found[module_name(path)] = (rel, deps)
    return found


def _closure(
    name: str, direct: dict[str, tuple[str, list[str]]], stack: tuple[str, ...] = ()
) -> list[str]:
    """Dependencies of ``name`` in load order (first to load first), without ``name``."""
    if name in stack:
        raise ModuleError(f"dependency cycle: {' -> '.join((*stack, name))}")
    order: list[str] = []
    for dep in direct[name][1]:
        if dep not in direct:
            continue  # built in, or missing: modprobe tolerates the former
        for sub in (*_closure(dep, direct, (*stack, name)), dep):
            if sub not in order:
                order.append(sub)
    return order


def modules_dep_lines(modules_dir: Path) -> list[str]:
    """The lines of a ``modules.dep`` for ``modules_dir``, from the modules' ``.modinfo``."""
    direct = _direct_deps(modules_dir)
    lines = []
    for name, (rel, _) in sorted(direct.items(), key=lambda kv: kv[1][0]):
        deps = [direct[d][0] for d in reversed(_closure(name, direct))]
        lines.append(f"{rel}: {' '.join(deps)}".rstrip())
    return lines


def write_modules_dep(modules_dir: Path) -> Path:
    """Generate ``modules_dir/modules.dep`` from the modules' own ``.modinfo``.

    :return: the path written.
    """
    dest = modules_dir / "modules.dep"
    tmp = dest.with_suffix(".tmp")
    tmp.write_text("\n".join(modules_dep_lines(modules_dir)) + "\n")
    tmp.replace(dest)
    return dest


class ModuleIndex:
    """Module lookup over a ``lib/modules/<version>`` tree that has a ``modules.dep``.

    :param modules_dir: the tree; without a ``modules.dep`` the dependencies are computed
        in memory (a user's or the system's tree is never written to).
    """

    def __init__(self, modules_dir: Path) -> None:
        self.root = modules_dir
        dep_file = modules_dir / "modules.dep"
        lines = (
            dep_file.read_text().splitlines()
            if dep_file.is_file()
            else modules_dep_lines(modules_dir)
        )
        self._deps: dict[str, tuple[str, list[str]]] = {}
        for line in lines:
            rel, sep, rest = line.partition(":")
            if sep:
                self._deps[module_name(rel)] = (rel.strip(), rest.split())
        builtin = modules_dir / "modules.builtin"
        self.builtin = frozenset(
            module_name(ln) for ln in (builtin.read_text().split() if builtin.is_file() else [])
        )

    def __contains__(self, name: str) -> bool:
        return name.replace("-", "_") in self._deps

    def path_of(self, name: str) -> str:
        """Relative path of module ``name`` (``-`` and ``_`` are equivalent)."""
        key = name.replace("-", "_")
        if key not in self._deps:
            hint = " (it is built into this kernel)" if key in self.builtin else ""
            raise ModuleError(f"module {name!r} not found in {self.root}{hint}")
        return self._deps[key][0]

    def load_order(self, names: list[str]) -> list[str]:
        """Relative paths of ``names`` and their dependencies, dependencies first.

        Modules built into the kernel are skipped silently.
        """
        order: list[str] = []
        for name in names:
            key = name.replace("-", "_")
            if key in self.builtin and key not in self._deps:
                continue
            rel = self.path_of(key)
            for dep in [*reversed(self._deps[key][1]), rel]:
                if dep not in order:
                    order.append(dep)
        return order

    def read_plain(self, rel: str) -> bytes:
        """The decompressed content of the module file at relative path ``rel``."""
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ModuleError(f"{rel}: outside {self.root}")
        return decompress_module(path.read_bytes(), rel)
