"""The run document: one validated map holding everything a run needs from the host.

The host builds it (:func:`build`); it travels to the guest in the RUN frame over the bulk
port after SYS_RDY (:mod:`guest.transfer`), never on the kernel command line; both sides
check it with :func:`validate`. Standard library only (the guest imports it at startup)::

    {
        "version": 1,
        "run_id": "20260101-120000-abcdef",        # optional, <= 64 printable ASCII
        "scenario": {"kind": "cgroup-spinners", "duration": 2.0, "cgroups": 2, "workers": 2},
        # or a scenario document (guest.scenario.document): {"version": 1, "name": ...}
        "verdict": {"fairness": 0.35, "max_gap_ms": 0.0},
        "hooks": {"wire_noise": 0, "crash": ""},
        "scheduler": {"path": "", "args": [], "env": {}},  # "" path: EEVDF, no scheduler
        "files": [{"kind": "scheduler", "name": "scx_simple", "mode": 0o755,
                   "size": 123456, "sha256": "<64 hex digits>"}],
        "entropy": b"<32 random bytes>",           # PID 1 mixes them into the CRNG first
        "session": {"mode": "exec", "argv": ["sh", "-c", "uname -r"], "tty": False,
                    "rows": 24, "cols": 80, "term": "xterm"},  # optional; default mode "run"
    }

``session.mode`` is ``run`` (the scenario, the default), ``shell`` (an interactive command on a
pty: ``argv``, default busybox's ``sh``) or ``exec`` (``argv`` on pipes, its exit status
returned); either runs in place of the scenario, over the shell port (:mod:`guest.shellphase`).

``version``, ``scenario.kind`` and ``entropy`` are required; other fields take the
defaults of :class:`guest.spec.RunSpec`. Unknown fields are errors. A file of kind K named
N is installed at ``/run/schedlab/inputs/K/N`` (:func:`install_path`); the scheduler path
may point there. Every error is a :class:`~guest.spec.SpecError` naming the field
(``scenario.workers``, ``files[2].name``).

>>> doc = build(RunSpec("cgroup-spinners", workers=3), entropy=bytes(32))
>>> validate(doc).spec.workers
3
"""

from __future__ import annotations

import os
from collections import namedtuple

from guest.scenario import document as _document
from guest.spec import FIELD_PATHS, PLAN, PROBES, RunSpec, SpecError

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, NoReturn

__all__ = (
    "BUSYBOX",
    "BUSYBOX_APPLETS_FILE",
    "ENTROPY_BYTES",
    "INPUTS_DIR",
    "KINDS",
    "MAX_ARGS",
    "MAX_ARGS_BYTES",
    "MAX_ENV",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_NAME",
    "MAX_PATH",
    "MAX_TOTAL_BYTES",
    "VERSION",
    "FileEntry",
    "RunDoc",
    "SESSION_MODES",
    "Scheduler",
    "Session",
    "build",
    "check_file",
    "check_name",
    "install_path",
    "validate",
)

VERSION = 1
#: What a transferred file is for; each kind is a directory under :data:`INPUTS_DIR`.
KINDS = ("scheduler", "lib", "include", "payload")
INPUTS_DIR = "/run/schedlab/inputs"
#: busybox in the image (the host adds it for a shell session) and the list of its applets,
#: one a line: where the host's image builder puts them and the guest's shell looks.
BUSYBOX = "/usr/bin/busybox"
BUSYBOX_APPLETS_FILE = "/usr/lib/schedlab/busybox-applets"
ENTROPY_BYTES = 32
MAX_FILES = 256  # a scheduler, its libraries, included files and payloads
MAX_FILE_BYTES = 256 << 20
MAX_TOTAL_BYTES = 256 << 20  # the guest also checks the free space of /run
MAX_NAME = 128
MAX_PATH = 1024
MAX_ARGS = 128
MAX_ARGS_BYTES = 32 << 10
MAX_ENV = 32
MAX_RUN_ID = 64
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+@=,~")
_HEX = frozenset("0123456789abcdef")
_TOP = (
    "version", "run_id", "scenario", "verdict", "hooks", "scheduler", "files", "entropy",
    "session",
)  # fmt: skip
#: ``session.mode``: the scenario, an interactive shell, or one command.
SESSION_MODES = ("run", "shell", "exec")
_TERM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-+._")


def install_path(kind: str, name: str) -> str:
    """Where the guest installs file ``name`` of ``kind`` (an absolute guest path)."""
    return f"{INPUTS_DIR}/{kind}/{name}"


class FileEntry(namedtuple("FileEntry", "kind name mode size sha256")):
    """One file of the run: ``kind`` (one of :data:`KINDS`), a plain ``name``, permission
    bits ``mode`` (0..0o777), ``size`` in bytes and ``sha256`` (64 lowercase hex digits)."""

    __slots__ = ()

    @property
    def path(self) -> str:
        """The installed path in the guest."""
        return install_path(self.kind, self.name)

    def as_map(self) -> dict[str, Any]:
        return dict(self._asdict())


class Scheduler(namedtuple("Scheduler", "path args env", defaults=("", (), ()))):
    """The sched_ext scheduler to start: a guest ``path`` (``""``: none, EEVDF), ``args``, and
    ``env``: ``(name, value)`` pairs added to its environment (``LD_LIBRARY_PATH`` for the
    libraries it came with), sorted by name."""

    __slots__ = ()

    @property
    def eevdf(self) -> bool:
        return self.path == ""

    def as_map(self) -> dict[str, Any]:
        return {"path": self.path, "args": list(self.args), "env": dict(self.env)}


class Session(
    namedtuple("Session", "mode argv tty rows cols term", defaults=("run", (), False, 24, 80, ""))
):
    """What the guest runs: the scenario (``mode`` ``run``), or ``argv`` as an interactive
    shell (``shell``: on a pty of ``rows`` x ``cols``, ``TERM=term``) or one command
    (``exec``: on a pty if ``tty``, else pipes). An empty ``argv`` is busybox's ``sh``."""

    __slots__ = ()

    @property
    def interactive(self) -> bool:
        return self.mode != "run"

    def as_map(self) -> dict[str, Any]:
        return {"mode": self.mode, "argv": list(self.argv), "tty": self.tty,
                "rows": self.rows, "cols": self.cols, "term": self.term}  # fmt: skip


class RunDoc(
    namedtuple(
        "RunDoc",
        "version run_id spec scenario scheduler files entropy session",
        defaults=(Session(),),
    )
):
    """A validated run document (:func:`validate`).

    ``spec`` is the :class:`~guest.spec.RunSpec` of a cgroup-spinners run; ``scenario`` the
    validated scenario map (its ``kind`` and parameters), or the normalised scenario
    document (then ``spec.scenario`` is :data:`guest.spec.PLAN`); ``files`` a tuple of
    :class:`FileEntry`; ``entropy`` the 32 fresh bytes.
    """

    __slots__ = ()

    def as_doc(self) -> dict[str, Any]:
        """The plain document again (what :func:`validate` accepts)."""
        s = self.spec
        return {
            "version": self.version,
            "run_id": self.run_id,
            "scenario": dict(self.scenario),
            "verdict": {"fairness": s.fairness, "max_gap_ms": s.max_gap_ms},
            "hooks": {"wire_noise": s.wire_noise, "crash": s.crash},
            "scheduler": self.scheduler.as_map(),
            "files": [f.as_map() for f in self.files],
            "entropy": self.entropy,
            "session": self.session.as_map(),
        }


# -- field checks ------------------------------------------------------------------------


def _fail(path: str, msg: str) -> NoReturn:
    raise SpecError(path, msg)


def _map(value: Any, path: str, known: Iterable[str]) -> dict[str, Any]:
    known = tuple(known)
    if not isinstance(value, dict):
        _fail(path, f"is {type(value).__name__}, want a map")
    for key in value:
        if not isinstance(key, str) or key not in known:
            where = f"{path}.{key}" if path else str(key)
            _fail(where[:200], f"unknown field (known: {', '.join(known)})")
    return value


def _int(value: Any, path: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(path, f"is {type(value).__name__}, want an integer")
    if not lo <= value <= hi:
        _fail(path, f"{value} is outside [{lo}, {hi}]")
    return value


def _text(value: Any, path: str, limit: int) -> str:
    if not isinstance(value, str):
        _fail(path, f"is {type(value).__name__}, want a string")
    if len(value) > limit:
        _fail(path, f"{len(value)} characters > {limit}")
    if "\0" in value:
        _fail(path, "contains a NUL character")
    return value


def check_name(name: Any, path: str = "name") -> str:
    """A file name: 1..128 of ``[A-Za-z0-9._-+@=,~]``, not starting with ``.`` or ``-``.

    No ``/`` can pass, so a name cannot leave its kind's directory.
    """
    _text(name, path, MAX_NAME)
    if not name:
        _fail(path, "is empty")
    bad = sorted(set(name) - _NAME_CHARS)
    if bad:
        _fail(path, f"{name[:64]!r} has characters outside [A-Za-z0-9._-+@=,~]: {bad[:8]!r}")
    if name[0] in ".-":
        _fail(path, f"{name[:64]!r} starts with {name[0]!r}")
    return name


def check_file(value: Any, path: str) -> FileEntry:
    """One entry of ``files`` (also the payload of a FILE_BEGIN frame, minus ``index``)."""
    m = _map(value, path, FileEntry._fields)
    for key in FileEntry._fields:
        if key not in m:
            _fail(f"{path}.{key}", "missing (required)")
    kind = m["kind"]
    if kind not in KINDS:
        _fail(f"{path}.kind", f"{str(kind)[:32]!r} is not one of {', '.join(KINDS)}")
    name = check_name(m["name"], f"{path}.name")
    mode = _int(m["mode"], f"{path}.mode", 0, 0o777)
    size = _int(m["size"], f"{path}.size", 0, MAX_FILE_BYTES)
    digest = _text(m["sha256"], f"{path}.sha256", 64)
    if len(digest) != 64 or not set(digest) <= _HEX:
        _fail(f"{path}.sha256", "is not 64 lowercase hex digits")
    return FileEntry(kind, name, mode, size, digest)


def _files(value: Any) -> tuple[FileEntry, ...]:
    if not isinstance(value, list):
        _fail("files", f"is {type(value).__name__}, want a list")
    if len(value) > MAX_FILES:
        _fail("files", f"{len(value)} files > {MAX_FILES}")
    out = tuple(check_file(v, f"files[{i}]") for i, v in enumerate(value))
    seen: set[tuple[str, str]] = set()
    for i, f in enumerate(out):
        if (f.kind, f.name) in seen:
            _fail(f"files[{i}].name", f"{f.kind} {f.name!r} given twice")
        seen.add((f.kind, f.name))
    total = sum(f.size for f in out)
    if total > MAX_TOTAL_BYTES:
        _fail("files", f"{total} bytes in all > {MAX_TOTAL_BYTES}")
    return out


def _argv(value: Any, path: str) -> list[str]:
    """A bounded list of argument strings (the scheduler's args, a session's argv)."""
    if not isinstance(value, list):
        _fail(path, f"is {type(value).__name__}, want a list of strings")
    if len(value) > MAX_ARGS:
        _fail(path, f"{len(value)} arguments > {MAX_ARGS}")
    for i, a in enumerate(value):
        _text(a, f"{path}[{i}]", MAX_ARGS_BYTES)
    if sum(len(a) + 1 for a in value) > MAX_ARGS_BYTES:
        _fail(path, f"more than {MAX_ARGS_BYTES} characters in all")
    return value


def _scheduler(value: Any, files: tuple[FileEntry, ...]) -> Scheduler:
    m = _map(value, "scheduler", Scheduler._fields)
    path = _text(m.get("path", ""), "scheduler.path", MAX_PATH)
    args = _argv(m.get("args", []), "scheduler.args")
    env = _env(m.get("env", {}))
    if not path:
        if args or env:
            _fail("scheduler.args" if args else "scheduler.env", "given without a scheduler path")
        return Scheduler()
    if not path.startswith("/") or os.path.normpath(path) != path or not path.isprintable():
        _fail("scheduler.path", f"{path[:80]!r} is not a normalized absolute path")
    if path.startswith(INPUTS_DIR + "/") and path not in {f.path for f in files}:
        _fail("scheduler.path", f"{path[:80]!r} is under {INPUTS_DIR} but no file installs it")
    return Scheduler(path, tuple(args), env)


def _session(value: Any) -> Session:
    m = _map(value, "session", Session._fields)
    mode = m.get("mode", "run")
    if mode not in SESSION_MODES:
        _fail("session.mode", f"{str(mode)[:32]!r} is not one of {', '.join(SESSION_MODES)}")
    argv = _argv(m.get("argv", []), "session.argv")
    if mode == "exec" and not argv:
        _fail("session.argv", "is empty: exec needs a command")
    if mode == "run" and argv:
        _fail("session.argv", "given for mode run (the scenario runs)")
    tty = m.get("tty", mode == "shell")
    if not isinstance(tty, bool):
        _fail("session.tty", f"is {type(tty).__name__}, want true or false")
    rows = _int(m.get("rows", 24), "session.rows", 1, 4096)
    cols = _int(m.get("cols", 80), "session.cols", 1, 4096)
    term = _text(m.get("term", ""), "session.term", 64)
    if not set(term) <= _TERM_CHARS:
        _fail("session.term", f"{term[:64]!r} is not a terminal name ([a-z0-9-+._])")
    return Session(mode, tuple(argv), tty or mode == "shell", rows, cols, term)


_ENV_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _env(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        _fail("scheduler.env", f"is {type(value).__name__}, want a map of strings")
    if len(value) > MAX_ENV:
        _fail("scheduler.env", f"{len(value)} variables > {MAX_ENV}")
    for name, v in value.items():
        where = f"scheduler.env.{str(name)[:64]}"
        _text(name, where, 64)
        if not name or not set(name) <= _ENV_NAME or name[0].isdigit():
            _fail(where, "is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        _text(v, where, MAX_PATH)
    return tuple(sorted(value.items()))


def _spinners(params: dict[str, Any], verdict: dict[str, Any], hooks: dict[str, Any]) -> RunSpec:
    # RunSpec owns the types and ranges; its errors already name the document field.
    values = {k: v for k, v in params.items() if k != "kind"}
    return RunSpec(scenario=params["kind"], **values, **verdict, **hooks)


#: Scenario kinds: kind -> (its parameter names, builder of the RunSpec).
SCENARIO_KINDS: dict[str, tuple[tuple[str, ...], Callable[..., RunSpec]]] = {
    "cgroup-spinners": (("duration", "cgroups", "workers"), _spinners),
    # Test hooks: the guest builds the plan (guest.probes) for its own CPUs.
    **{name: (("duration", "cgroups", "workers"), _spinners) for name in PROBES},
}


def validate(doc: Any) -> RunDoc:
    """Check a run document and return its validated form.

    :raises SpecError: the first bad field, named by its path.
    """
    m = _map(doc, "", _TOP)
    if "version" not in m:
        _fail("version", "missing (required)")
    if m["version"] != VERSION or isinstance(m["version"], bool):
        _fail(
            "version", f"{str(m['version'])[:32]!r} is not supported (this guest reads {VERSION})"
        )
    run_id = _text(m.get("run_id", ""), "run_id", MAX_RUN_ID)
    if not run_id.isprintable() or not run_id.isascii():
        _fail("run_id", "is not printable ASCII")
    entropy = m.get("entropy")
    if entropy is None:
        _fail("entropy", "missing (required)")
    if not isinstance(entropy, bytes) or len(entropy) != ENTROPY_BYTES:
        _fail("entropy", f"want exactly {ENTROPY_BYTES} bytes")
    if "scenario" not in m:
        _fail("scenario", "missing (required)")
    if isinstance(m["scenario"], dict) and "version" in m["scenario"]:
        return _with_plan(m, run_id, entropy)
    kind = _map(m["scenario"], "scenario", ("kind",) + _all_params()).get("kind")
    if kind not in SCENARIO_KINDS:
        _fail("scenario.kind", f"{str(kind)[:32]!r} is not one of {', '.join(SCENARIO_KINDS)}")
    params, make = SCENARIO_KINDS[kind]
    scenario = _map(m["scenario"], "scenario", ("kind",) + params)
    verdict = _map(m.get("verdict", {}), "verdict", ("fairness", "max_gap_ms"))
    hooks = _map(m.get("hooks", {}), "hooks", ("wire_noise", "crash"))
    spec = make(scenario, verdict, hooks)
    files = _files(m.get("files", []))
    scheduler = _scheduler(m.get("scheduler", {}), files)
    session = _session(m.get("session", {}))
    return RunDoc(VERSION, run_id, spec, dict(scenario), scheduler, files, entropy, session)


def _with_plan(m: dict[str, Any], run_id: str, entropy: bytes) -> RunDoc:
    """A run whose ``scenario`` is a scenario document (:mod:`guest.scenario.document`);
    its RunSpec carries the verdict limits, hooks and the scenario's duration."""
    plan = _document.validate(m["scenario"])
    verdict = _map(m.get("verdict", {}), "verdict", ("fairness", "max_gap_ms"))
    hooks = _map(m.get("hooks", {}), "hooks", ("wire_noise", "crash"))
    spec = _spinners({"kind": PLAN, "duration": plan["duration_s"]}, verdict, hooks)
    files = _files(m.get("files", []))
    scheduler = _scheduler(m.get("scheduler", {}), files)
    session = _session(m.get("session", {}))
    return RunDoc(VERSION, run_id, spec, plan, scheduler, files, entropy, session)


def _all_params() -> tuple[str, ...]:
    return tuple(p for params, _ in SCENARIO_KINDS.values() for p in params)


def build(
    spec: RunSpec,
    *,
    files: Iterable[FileEntry] = (),
    scheduler: Scheduler | None = None,
    entropy: bytes | None = None,
    run_id: str = "",
    scenario: dict[str, Any] | None = None,
    session: Session | None = None,
) -> dict[str, Any]:
    """The host side: a validated run document for ``spec``.

    :param entropy: 32 bytes; default: fresh ones from ``os.urandom``.
    :param session: a shell or exec session in place of the scenario (:class:`Session`).
    :param scenario: a scenario document (``schedlab_scenario.Scenario.to_document``): the
        guest plays it; ``spec`` then gives only the verdict limits and hooks.
    :raises SpecError: as :func:`validate`.
    """
    if scenario is None and spec.scenario not in SCENARIO_KINDS:
        _fail(FIELD_PATHS["scenario"], f"cannot build scenario {spec.scenario!r}")
    doc = {
        "version": VERSION,
        "run_id": run_id,
        "scenario": scenario
        if scenario is not None
        else {
            "kind": spec.scenario,
            "duration": spec.duration,
            "cgroups": spec.cgroups,
            "workers": spec.workers,
        },
        "verdict": {"fairness": spec.fairness, "max_gap_ms": spec.max_gap_ms},
        "hooks": {"wire_noise": spec.wire_noise, "crash": spec.crash},
        "scheduler": (scheduler or Scheduler()).as_map(),
        "files": [FileEntry(*f).as_map() for f in files],
        "entropy": os.urandom(ENTROPY_BYTES) if entropy is None else entropy,
    }
    if session is not None and session.mode != "run":
        doc["session"] = session.as_map()
    validate(doc)
    return doc
