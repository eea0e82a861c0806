"""Work types: what a cgroup's workers may run, with their parameters (a contract module).

One table, :data:`WORK_TYPES`, serves the host model (``schedlab_scenario.WorkType`` checks a
test's work type against it when built) and the guest (the scenario document is checked again
there). The work types themselves, their parameters and group sizes are
:data:`guest.workspec.TABLE` (registered here); the functions that do the work live in
:mod:`guest.worktypes` under the same names.

A type outside that table (a test's): write ``check(params, path) -> dict`` (the parameters
with their defaults filled in; :func:`params` does the usual ones) and ``group(params) -> int``
(how many workers act together: 2 for a ping-pong pair; a cgroup's worker count must be a
multiple of it), then :func:`register` it.

>>> check_work("spin", {}, "work")
('spin', {'unit_iters': 1024})
"""

from __future__ import annotations

import math
from collections import namedtuple

from guest import workspec
from guest.spec import SpecError
from guest.workspec import Param

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

__all__ = (
    "MAX_PARAMS",
    "WORK_TYPES",
    "Param",
    "WorkTypeSpec",
    "check_work",
    "params",
    "register",
)

MAX_PARAMS = 32
_MAX_TEXT = 256


#: A work type: its ``name``, ``check(params, path) -> dict``, ``group(params) -> int`` and a
#: one-line ``doc`` (``schedlab list`` shows it).
WorkTypeSpec = namedtuple("WorkTypeSpec", "name check group doc")

#: name -> :class:`WorkTypeSpec`.
WORK_TYPES: dict[str, WorkTypeSpec] = {}


def _fail(path: str, msg: str) -> NoReturn:
    raise SpecError(path, msg)


def _value(p: Param, v: Any, path: str) -> Any:
    if p.kind == "bool":
        if not isinstance(v, bool):
            _fail(path, f"is {type(v).__name__}, want true or false")
        return v
    if p.kind == "str":
        if not isinstance(v, str) or len(v) > _MAX_TEXT:
            _fail(path, f"want a string of at most {_MAX_TEXT} characters")
        if p.choices and v not in p.choices:
            _fail(path, f"{v[:40]!r} is not one of {', '.join(p.choices)}")
        return v
    ok = (int,) if p.kind == "int" else (int, float)
    if not isinstance(v, ok) or isinstance(v, bool):
        _fail(
            path, f"is {type(v).__name__}, want {'an integer' if p.kind == 'int' else 'a number'}"
        )
    if p.kind == "float":
        v = float(v)
        if not math.isfinite(v):
            _fail(path, f"{v!r} is not finite")
    if (p.lo is not None and v < p.lo) or (p.hi is not None and v > p.hi):
        _fail(path, f"{v!r} is outside [{p.lo}, {p.hi}]")
    return v


def params(given: Any, path: str, table: dict[str, Param]) -> dict[str, Any]:
    """Check ``given`` against ``table``: unknown names and bad values are errors; absent
    ones take their default (a parameter whose default is None is required)."""
    if not isinstance(given, dict):
        _fail(path, f"is {type(given).__name__}, want a map of parameters")
    for key in given:
        if key not in table:
            known = ", ".join(table) or "none"
            _fail(f"{path}.{str(key)[:40]}", f"unknown parameter (known: {known})")
    out = {}
    for key, p in table.items():
        if key in given:
            out[key] = _value(p, given[key], f"{path}.{key}")
        elif p.default is None:
            _fail(f"{path}.{key}", "missing (required)")
        else:
            out[key] = p.default
    return out


def register(spec: WorkTypeSpec) -> WorkTypeSpec:
    """Add a work type to :data:`WORK_TYPES` (its name must be new)."""
    if spec.name in WORK_TYPES:
        raise ValueError(f"work type {spec.name!r} registered twice")
    WORK_TYPES[spec.name] = spec
    return spec


def check_work(name: Any, given: Any, path: str) -> tuple[str, dict[str, Any]]:
    """A work type and its parameters, checked; return ``(name, params with defaults)``.

    :raises SpecError: an unknown type (``path.type``) or a bad parameter (``path.params.x``).
    """
    spec = WORK_TYPES.get(name) if isinstance(name, str) else None
    if spec is None:
        _fail(f"{path}.type", f"{str(name)[:40]!r} is not one of {', '.join(sorted(WORK_TYPES))}")
    if isinstance(given, dict) and len(given) > MAX_PARAMS:
        _fail(f"{path}.params", f"{len(given)} parameters > {MAX_PARAMS}")
    return name, spec.check(given, f"{path}.params")


def group_size(name: str, checked: dict[str, Any]) -> int:
    """How many workers of ``name`` act together (checked parameters)."""
    return int(WORK_TYPES[name].group(checked))


def _table_check(table: dict[str, Param]) -> Callable[[Any, str], dict[str, Any]]:
    return lambda given, path: params(given, path, table)


# -- the work types: guest.workspec.TABLE -------------------------------------------------


def _table_type(name: str, wd: workspec.WorkDef) -> WorkTypeSpec:
    def check(given: Any, path: str) -> dict[str, Any]:
        out = params(given, path, wd.params)
        try:
            workspec.validate(name, out)
        except ValueError as e:
            _fail(path, str(e))
        return out

    return WorkTypeSpec(name, check, lambda p: workspec.group_size(name, p), wd.doc)


for _name, _wd in workspec.TABLE.items():
    register(_table_type(_name, _wd))
