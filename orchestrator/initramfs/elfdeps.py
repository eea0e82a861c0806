"""Shared-library dependencies of ELF files, resolved the way the dynamic loader does.

For each file: ``DT_NEEDED`` names are looked up in ``DT_RPATH`` (only when there is no
``DT_RUNPATH``), then ``DT_RUNPATH``, then the ``ld.so.conf`` directories, then the
default multiarch directories; ``$ORIGIN`` expands to the file's directory
(:manpage:`ld.so(8)`). A candidate must match the requester's ELF class and machine.

>>> libs, interp = resolve_libraries([Path("/usr/bin/python3")])
>>> libs["libc.so.6"], interp
(PosixPath('/lib/x86_64-linux-gnu/libc.so.6'), PosixPath('/lib64/ld-linux-x86-64.so.2'))
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

__all__ = ("ElfDeps", "ElfDepsError", "elf_deps", "ld_so_conf_dirs", "resolve_libraries")

DEFAULT_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)
_MAX_LIBS = 512


class ElfDepsError(LookupError):
    """A file is not a readable ELF or a needed library cannot be found."""


@dataclass(frozen=True)
class ElfDeps:
    """The dynamic-linking facts of one ELF file."""

    path: Path
    elfclass: int
    machine: str
    needed: tuple[str, ...]
    runpath: tuple[str, ...]
    rpath: tuple[str, ...]
    interp: str | None


def _split_paths(value: str, origin: Path) -> tuple[str, ...]:
    return tuple(
        p.replace("$ORIGIN", str(origin)).replace("${ORIGIN}", str(origin))
        for p in value.split(":")
        if p
    )


def elf_deps(path: Path) -> ElfDeps:
    """Read ``DT_NEEDED``, ``DT_RUNPATH``, ``DT_RPATH`` and ``PT_INTERP`` of ``path``."""
    needed: list[str] = []
    runpath: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    interp = None
    origin = path.resolve().parent
    try:
        with path.open("rb") as fh:
            elf = ELFFile(fh)
            for seg in elf.iter_segments():
                if isinstance(seg, InterpSegment):
                    interp = seg.get_interp_name()
                if not isinstance(seg, DynamicSegment):
                    continue  # segments, not sections: parsing every section header is slow
                for tag in seg.iter_tags():
                    # pyelftools sets .needed/.runpath/.rpath per tag kind at run time
                    if tag.entry.d_tag == "DT_NEEDED":
                        needed.append(tag.needed)  # type: ignore[attr-defined]
                    elif tag.entry.d_tag == "DT_RUNPATH":
                        runpath = _split_paths(tag.runpath, origin)  # type: ignore[attr-defined]
                    elif tag.entry.d_tag == "DT_RPATH":
                        rpath = _split_paths(tag.rpath, origin)  # type: ignore[attr-defined]
            return ElfDeps(
                path, elf.elfclass, elf["e_machine"], tuple(needed), runpath, rpath, interp
            )
    except (OSError, ELFError) as exc:
        raise ElfDepsError(f"{path}: not a readable ELF file ({exc})") from exc


def ld_so_conf_dirs(conf: Path = Path("/etc/ld.so.conf")) -> list[str]:
    """Directories listed in ``ld.so.conf`` and the files it includes, in order."""
    dirs: list[str] = []
    seen: set[Path] = set()

    def read(path: Path) -> None:
        if path in seen or not path.is_file():
            return
        seen.add(path)
        for raw in path.read_text(errors="replace").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("include "):
                pattern = line.split(None, 1)[1]
                if not pattern.startswith("/"):
                    pattern = str(path.parent / pattern)
                for inc in sorted(glob.glob(pattern)):
                    read(Path(inc))
            elif line:
                dirs.append(line)

    read(conf)
    return dirs


def _matches(path: Path, want: ElfDeps) -> bool:
    try:
        with path.open("rb") as fh:
            elf = ELFFile(fh)
            return elf.elfclass == want.elfclass and elf["e_machine"] == want.machine
    except (OSError, ELFError):
        return False


def _find(name: str, req: ElfDeps, system_dirs: list[str]) -> Path:
    if "/" in name:
        return Path(name)
    dirs = [*(req.rpath if not req.runpath else ()), *req.runpath, *system_dirs]
    for d in dirs:
        cand = Path(d) / name
        if cand.is_file() and _matches(cand, req):
            return cand
    raise ElfDepsError(f"{req.path}: needed library {name} not found in {':'.join(dirs)}")


def resolve_libraries(roots: list[Path]) -> tuple[dict[str, Path], Path | None]:
    """All shared libraries needed by ``roots``, recursively.

    :param roots: ELF executables or shared objects.
    :return: ``({needed name: host path}, host path of the ELF interpreter or None)``.
    """
    system_dirs = [*ld_so_conf_dirs(), *DEFAULT_DIRS]
    found: dict[str, Path] = {}
    interp: Path | None = None
    queue = list(roots)
    while queue:
        deps = elf_deps(queue.pop(0))
        if deps.interp and interp is None:
            interp = Path(deps.interp)
        for name in deps.needed:
            if name in found:
                continue
            if len(found) >= _MAX_LIBS:
                raise ElfDepsError(f"more than {_MAX_LIBS} libraries: refusing to continue")
            found[name] = _find(name, deps, system_dirs)
            queue.append(found[name])
    return found, interp
