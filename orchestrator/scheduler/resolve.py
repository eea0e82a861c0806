"""``--scheduler NAME|PATH`` -> the files to send to the guest and the argv to run there.

- ``eevdf``: no sched_ext scheduler (no files, empty argv).
- An example's name (``schedlab scheduler list``): its cached binary, built on first use.
- A path: the user's executable. An ELF x86-64 binary gets its ``DT_NEEDED`` libraries
  found (:func:`orchestrator.initramfs.elfdeps.resolve_libraries`) and packed; a script's
  ``#!`` interpreter must exist in the guest image (there is no shell there).

Files are :class:`orchestrator.inputs.HostFile` (the transfer's input): a file of kind K
named N is installed at ``/run/schedlab/inputs/K/N`` (:func:`guest.rundoc.install_path`);
:meth:`SchedulerLaunch.rundoc_scheduler` is the run document's ``scheduler``. The binary is kind
``scheduler`` under its own name (its comm: stall messages name it); its libraries are kind
``lib`` under their sonames, found through ``LD_LIBRARY_PATH`` (never over the image's own
``/lib``, which PID 1 has mapped). The dynamic loader must be the image's own. Bad input
raises :class:`ResolveError`: one line.

>>> launch = resolve_scheduler("scx_qmap", kernel, flags=["stall-user"])
>>> launch.argv
('/run/schedlab/inputs/scheduler/scx_qmap', '-t', '20')
>>> [(f.kind, f.name) for f in launch.files][:2]
[('scheduler', 'scx_qmap'), ('lib', 'libc.so.6')]
>>> inputs = prepare(spec, files=launch.files, scheduler=launch.rundoc_scheduler())
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guest import rundoc
from orchestrator.initramfs.elfdeps import ElfDepsError, elf_deps, resolve_libraries
from orchestrator.initramfs.pyruntime import GUEST_PYTHON
from orchestrator.inputs import HostFile
from orchestrator.kernel.artifacts import KernelArtifacts
from orchestrator.scheduler.cache import BuildCache, ensure_built
from orchestrator.scheduler.definition import EEVDF, SchedulerDef
from orchestrator.scheduler.errors import DefinitionError, ResolveError
from orchestrator.scheduler.examples import EXAMPLES, builtin_names

__all__ = (
    "KIND_LIB",
    "KIND_SCHEDULER",
    "SchedulerLaunch",
    "guest_interpreters",
    "resolve_scheduler",
    "split_sched_args",
)

KIND_SCHEDULER = "scheduler"
KIND_LIB = "lib"
_GUEST_LIB = f"{rundoc.INPUTS_DIR}/{KIND_LIB}"
#: Upper bound on what one scheduler may ask the transfer to carry.
MAX_PAYLOAD_BYTES = rundoc.MAX_TOTAL_BYTES
_ELF_MAGIC = b"\x7fELF"
_MAX_SHEBANG = 256  # BINPRM_BUF_SIZE since Linux 5.1

Ensure = Callable[..., BuildCache]


def _file_dict(f: HostFile) -> dict[str, Any]:
    return {
        "host": str(f.path),
        "kind": f.kind,
        "name": f.name,
        "mode": f.mode,
        "guest": f.guest_path,
    }


@dataclass(frozen=True)
class SchedulerLaunch:
    """What it takes to run one scheduler in the guest: files, argv, environment.

    ``argv`` is empty for EEVDF. ``origin`` is ``eevdf``, ``example`` or ``path``.
    """

    definition: SchedulerDef
    origin: str
    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    files: tuple[HostFile, ...] = ()
    kernel: str | None = None  # the kernel an example was built for

    @property
    def is_eevdf(self) -> bool:
        return self.definition.is_eevdf

    @property
    def total_bytes(self) -> int:
        return sum(f.path.stat().st_size for f in self.files)

    def rundoc_scheduler(self) -> rundoc.Scheduler:
        """The run document's ``scheduler`` entry (empty for EEVDF)."""
        if not self.argv:
            return rundoc.Scheduler()
        return rundoc.Scheduler(self.argv[0], tuple(self.argv[1:]), tuple(sorted(self.env.items())))

    def to_dict(self) -> dict[str, Any]:
        """A plain structure (str/int/list/dict only) for msgpack or JSON."""
        d = self.definition
        return {
            "name": d.name,
            "origin": self.origin,
            "ops": d.ops,
            "argv": list(self.argv),
            "env": dict(self.env),
            "files": [_file_dict(f) for f in self.files],
            "kernel": self.kernel,
            "watchdog_timeout_s": d.watchdog_timeout_s,
            "sysctls": [[s.key, s.value] for s in d.sysctls],
            "kargs": list(d.kargs),
        }


def split_sched_args(text: str | None) -> tuple[str, ...]:
    """``--sched-args "-e 100 -v"`` -> ``("-e", "100", "-v")`` (shell quoting rules)."""
    try:
        return tuple(shlex.split(text or ""))
    except ValueError as exc:
        raise ResolveError(f"--sched-args {text!r}: {exc}; quote it like a shell would") from exc


def guest_interpreters() -> frozenset[str]:
    """Paths a script's ``#!`` may name: the image's executables (``/bin`` -> ``usr/bin``)."""
    paths = {GUEST_PYTHON}
    paths |= {p.replace("/usr/bin/", "/bin/", 1) for p in paths if p.startswith("/usr/bin/")}
    return frozenset(paths)


def _image_interp() -> str | None:
    # The image packs the host Python's own loader at its PT_INTERP path (initramfs.pyruntime).
    try:
        return elf_deps(Path(sys.executable).resolve()).interp
    except ElfDepsError:
        return None


def _guest_name(path: Path) -> str:
    # The transfer's names are [A-Za-z0-9._-+@=,~], not starting with '.' or '-'.
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", path.name)[:64]
    return name if name[:1].isalnum() else f"s{name}"[:64]


def _elf_files(spec: str, binary: Path, name: str) -> tuple[list[HostFile], dict[str, str]]:
    try:
        deps = elf_deps(binary)
        if deps.machine != "EM_X86_64" or deps.elfclass != 64:
            raise ResolveError(
                f"--scheduler {spec}: built for {deps.machine} ({deps.elfclass}-bit);"
                f" the guest is x86-64"
            )
        libs, interp = resolve_libraries([binary])
    except ElfDepsError as exc:
        raise ResolveError(f"--scheduler {spec}: {exc}") from exc
    if interp is not None and str(interp) != _image_interp():
        raise ResolveError(
            f"--scheduler {spec}: needs the dynamic loader {interp}, which the "
            f"guest does not have (it has {_image_interp()}); link it against "
            f"this host's glibc or statically"
        )
    files = [HostFile(KIND_SCHEDULER, binary, name, 0o755)]
    skip = {Path(deps.interp).name} if deps.interp else set()
    for soname, host in sorted(libs.items()):
        if soname not in skip:  # the loader's own soname resolves to the loaded loader
            files.append(HostFile(KIND_LIB, host.resolve(), soname, 0o644))
    env = {"LD_LIBRARY_PATH": _GUEST_LIB} if len(files) > 1 else {}
    return files, env


def _script_files(spec: str, script: Path, head: bytes, name: str) -> list[HostFile]:
    line = head[2:].split(b"\n", 1)[0].strip()
    interp = line.split(None, 1)[0].decode(errors="replace") if line else ""
    have = guest_interpreters()
    if interp not in have:
        raise ResolveError(
            f"--scheduler {spec}: its interpreter {interp or '(none)'!r} does not "
            f"exist in the guest (it has {', '.join(sorted(have))}); change the "
            f"#! line or pass an ELF binary"
        )
    return [HostFile(KIND_SCHEDULER, script, name, 0o755)]


def _path_launch(spec: str, flags: Sequence[str], sched_args: Sequence[str]) -> SchedulerLaunch:
    path = Path(spec).expanduser()
    try:
        st = path.stat()
    except OSError as exc:
        raise ResolveError(
            f"--scheduler {spec}: {exc.strerror.lower() if exc.strerror else exc}; "
            f"pass one of {', '.join(builtin_names())} or an executable's path"
        ) from exc
    if not stat.S_ISREG(st.st_mode):
        raise ResolveError(f"--scheduler {spec}: not a regular file")
    if not os.access(path, os.X_OK) or not st.st_mode & 0o111:
        raise ResolveError(f"--scheduler {spec}: not executable (chmod +x {spec})")
    if flags:
        raise ResolveError(f"--scheduler {spec}: a path has no named flags; use --sched-args")
    name = _guest_name(path)  # the name it was given, not a symlink's target: it is its comm
    path = path.resolve()
    with path.open("rb") as fh:
        head = fh.read(_MAX_SHEBANG)
    if head.startswith(_ELF_MAGIC):
        files, env = _elf_files(spec, path, name)
    elif head.startswith(b"#!"):
        files, env = _script_files(spec, path, head, name), {}
    else:
        raise ResolveError(f"--scheduler {spec}: neither an ELF binary nor a #! script")
    definition = SchedulerDef(name=name, binary=str(path), description=f"user scheduler {path}")
    return _checked(
        spec,
        SchedulerLaunch(definition, "path", (files[0].guest_path, *sched_args), env, tuple(files)),
    )


def _example_launch(
    name: str,
    kernel: KernelArtifacts,
    flags: Sequence[str],
    sched_args: Sequence[str],
    ensure: Ensure,
    progress: Callable[[str], None],
) -> SchedulerLaunch:
    definition = EXAMPLES[name]
    try:
        tail = definition.argv_tail(flags, sched_args)
    except DefinitionError as exc:
        raise ResolveError(f"--scheduler {name}: {exc}") from exc
    built = ensure(kernel, progress=progress)
    entry = built.schedulers.get(definition.binary or "")
    if entry is None:
        raise ResolveError(
            f"--scheduler {name}: the build for {kernel.version} has no "
            f"{definition.binary}; run `schedlab scheduler build --force`"
        )
    files, env = _elf_files(name, entry.path, entry.name)
    return _checked(
        name,
        SchedulerLaunch(
            definition, "example", (files[0].guest_path, *tail), env, tuple(files), built.kernel
        ),
    )


def _checked(spec: str, launch: SchedulerLaunch) -> SchedulerLaunch:
    size = launch.total_bytes
    if size > MAX_PAYLOAD_BYTES:
        raise ResolveError(
            f"--scheduler {spec}: {size / 2**20:.0f} MiB with its libraries, "
            f"more than the {MAX_PAYLOAD_BYTES // 2**20} MiB a run carries"
        )
    return launch


def resolve_scheduler(
    spec: str,
    kernel: KernelArtifacts | None,
    *,
    flags: Sequence[str] = (),
    sched_args: Sequence[str] = (),
    ensure: Ensure = ensure_built,
    progress: Callable[[str], None] = lambda _m: None,
) -> SchedulerLaunch:
    """Resolve ``--scheduler`` for a run on ``kernel``.

    :param spec: ``eevdf``, an example name, or a path (a bare name that is neither a known
        scheduler nor an existing file is an error).
    :param kernel: the kernel under test (examples are built for it; unused otherwise).
    :param flags: named flags of an example's definition.
    :param sched_args: extra arguments, appended last.
    :param ensure: builds or finds the examples (tests pass a fake).
    :return: the launch; raises :class:`ResolveError` with a one-line message.
    """
    if not spec:
        raise ResolveError("--scheduler: empty; pass eevdf, an example name or a path")
    if spec.lower() == EEVDF.name:
        if flags or sched_args:
            raise ResolveError("--scheduler eevdf runs no scheduler: it takes no flags or args")
        return SchedulerLaunch(EEVDF, "eevdf")
    if spec in EXAMPLES and "/" not in spec:
        if kernel is None:
            raise ResolveError(f"--scheduler {spec}: needs a kernel to build it for")
        return _example_launch(spec, kernel, flags, sched_args, ensure, progress)
    return _path_launch(spec, flags, sched_args)
