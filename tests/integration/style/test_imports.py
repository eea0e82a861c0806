"""The import rule: a process package imports no other process package's internals.

Processes share only ``schedlab_shared.*`` and the guest's contract modules (what the host
must read of the guest). The guest runs inside the VM, where nothing but its own package,
the standard library and msgpack exists; its contract modules, imported on the host too,
may use only the standard library and msgpack. Every import statement of every file is
checked, lazy ones inside functions included.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROCESS_PACKAGES = ("vmm_proc", "monitor_proc", "collector_proc", "orchestrator", "guest")
SHARED = "schedlab_shared"
# Host libraries above the processes (a test author's imports): they may use schedlab_shared
# and the guest contracts, never a process package's internals; no process is imported by them.
LIBRARIES = ("schedlab_scenario", "schedlab_results")
# Judgement above the processes: the orchestrator judges runs with it, a monitor judges live.
# It may import only the standard library, schedlab_shared and the guest contracts (the
# worker reports it judges).
VERDICTS = "verdicts"
# The guest modules the host must read: frames and their payload schemas, control bytes,
# the run spec and document, the host -> guest transfer of a run's inputs, how a sched_ext
# scheduler ended.
GUEST_CONTRACTS = frozenset(
    {"guest.wire", "guest.schema", "guest.control", "guest.spec", "guest.rundoc", "guest.transfer"}
    | {"guest.scx", "guest.scx.exit_parse", "guest.scx.verifier_log", "guest.scx.outcomes"}
    | {"guest.scenario", "guest.scenario.document", "guest.scenario.work", "guest.scenario.record"}
    | {"guest.workspec", "guest.workreport"}  # work types' parameters; workers' reports
)
# What exists inside the VM besides the standard library (orchestrator/initramfs/pyruntime).
GUEST_THIRD_PARTY = frozenset({"msgpack"})

# (importing file, imported module) -> why it is allowed. Keep it tiny.
ALLOWED: dict[tuple[str, str], str] = {
    # The builder packs the guest package's files into the initramfs: it imports the
    # package only to find its directory (guest/__init__.py runs no code), never its modules.
    ("orchestrator/initramfs/builder.py", "guest"): "locates the guest tree to pack it",
    # result.json is defined once, in the orchestrator that writes it; the results library
    # reads it through that definition, in this one module.
    ("schedlab_results/result_doc.py", "orchestrator.result_schema"): "result.json's schema",
}


class Import(NamedTuple):
    line: int
    module: str  # the dotted module the statement binds or reads


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _exists(module: str) -> bool:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(tree: ast.AST, module: str, is_package: bool) -> Iterator[Import]:
    """Every module an AST imports, relative imports resolved against ``module``.

    ``from a import b`` yields ``a.b`` when that is a module of this tree, else ``a``.
    ``importlib.import_module("x")`` and ``__import__("x")`` with a literal count too.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base == "__future__":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield Import(node.lineno, sub if _exists(sub) else base)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield Import(node.lineno, node.args[0].value)


def _stdlib(top: str) -> bool:
    return top in sys.stdlib_module_names


def violation(module: str, target: str) -> str | None:
    """Why ``module`` may not import ``target``, or None when it may."""
    own, top = module.split(".")[0], target.split(".")[0]
    if own == "guest":
        if module in GUEST_CONTRACTS and not (
            _stdlib(top) or top in GUEST_THIRD_PARTY or target in GUEST_CONTRACTS
        ):
            return "a guest contract module may use only the standard library and msgpack"
        if top != "guest" and not _stdlib(top) and top not in GUEST_THIRD_PARTY:
            return (
                "the guest runs inside the VM: only its own package, stdlib and msgpack exist there"
            )
        return None
    if own == VERDICTS and not (
        _stdlib(top) or top in (SHARED, VERDICTS) or target in GUEST_CONTRACTS
    ):
        return "verdicts may use only the standard library, schedlab_shared and guest contracts"
    if own == SHARED and (top in PROCESS_PACKAGES or top in LIBRARIES):
        return "schedlab_shared is imported by every process and may import none of them"
    if top in PROCESS_PACKAGES and top != own and target not in GUEST_CONTRACTS:
        return (
            f"{top} is another process package: share through schedlab_shared or a guest contract"
        )
    return None


def _sources() -> Iterator[Path]:
    for pkg in (*PROCESS_PACKAGES, SHARED, *LIBRARIES, VERDICTS):
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_no_process_package_imports_another_s_internals() -> None:
    found, used = [], set()
    for path in _sources():
        rel = str(path.relative_to(ROOT))
        module = _module_name(path)
        tree = ast.parse(path.read_text(), filename=rel)
        for imp in imports_of(tree, module, path.name == "__init__.py"):
            why = violation(module, imp.module)
            if why is None:
                continue
            if (rel, imp.module) in ALLOWED:
                used.add((rel, imp.module))
                continue
            found.append(f"{rel}:{imp.line}: imports {imp.module}: {why}")
    assert not found, "\n".join(found)
    assert used == set(ALLOWED), f"stale allow-list entries: {set(ALLOWED) - used}"


@pytest.mark.parametrize(
    ("module", "is_package", "source", "bad"),
    [
        ("orchestrator.session", False, "from vmm_proc.config import VmConfig", "vmm_proc.config"),
        (
            "orchestrator.attach",
            False,
            "def f():\n    from monitor_proc import service",
            "monitor_proc.service",
        ),
        ("collector_proc.service", False, "import orchestrator.result", "orchestrator.result"),
        ("vmm_proc.engines.qemu", False, "from guest import init", "guest.init"),
        (
            "schedlab_shared.bus.vmm",
            False,
            "from vmm_proc.engines import base",
            "vmm_proc.engines.base",
        ),
        ("guest.wire", False, "import zmq", "zmq"),
        ("verdicts.workers", False, "from orchestrator import result", "orchestrator.result"),
        ("verdicts.workers", False, "from guest import worktypes", "guest.worktypes"),
        (
            "schedlab_scenario.model",
            False,
            "from orchestrator import request",
            "orchestrator.request",
        ),
        ("schedlab_shared.topology", False, "import schedlab_scenario", "schedlab_scenario"),
        ("verdicts.monitor", False, "from orchestrator import result", "orchestrator.result"),
        ("verdicts.monitor", False, "import zmq", "zmq"),
        ("guest.wire", False, "from . import init", "guest.init"),
        ("guest.init", False, "from schedlab_shared.bus import vmm", "schedlab_shared.bus.vmm"),
        (
            "orchestrator.bench",
            False,
            "importlib.import_module('vmm_proc.probe')",
            "vmm_proc.probe",
        ),
    ],
)
def test_the_rule_catches_each_kind_of_violation(module, is_package, source, bad) -> None:
    imports = list(imports_of(ast.parse(source), module, is_package))
    assert [i.module for i in imports] == [bad]
    assert violation(module, bad) is not None


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("collector_proc.service", "from guest.wire import FrameDecoder"),
        ("orchestrator.session", "from guest import control, spec"),
        ("vmm_proc.service", "from schedlab_shared.bus import vmm"),
        ("guest.init", "from guest.cgroups import CgroupTree\nimport msgpack, os"),
        ("guest.wire", "import binascii, msgpack"),
        ("orchestrator.kernel.fetch", "from ..private_apt import PrivateApt"),
        ("schedlab_scenario.model", "from guest.scenario import document"),
        ("orchestrator.cli", "from schedlab_scenario import catalog"),
    ],
)
def test_the_rule_allows_what_is_shared(module, source) -> None:
    for imp in imports_of(ast.parse(source), module, False):
        assert violation(module, imp.module) is None, imp
