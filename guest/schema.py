"""Payload schemas of wire frames: what a frame's msgpack map may hold, checked on both sides.

A schema is written with plain Python values and compiled once by :func:`spec`::

    {"level": OneOf("info", "error"), "msg": str, "t_ns": Opt(Int(0))}

- ``str``, ``bytes``, ``int``, ``bool``, ``float`` are a string (at most :data:`MAX_STR`
  characters), bytes (at most ``MAX_FRAME``, the frame bounds them), a 64-bit integer, a
  bool, and a finite number (an int or a float, never a bool); ``list`` and ``dict`` are
  any list and any map whose contents map to JSON;
- ``{"name": spec, ...}`` is a map holding these fields (each required unless wrapped in
  :class:`Opt`); fields it does not declare are allowed and checked as :data:`JSON`;
- ``[spec]`` is a list of at most :data:`MAX_ITEMS` items, each matching ``spec``;
- :class:`Int`, :class:`Str`, :class:`OneOf`, :class:`ListOf` add bounds; :data:`JSON` is
  any value that maps to JSON.

Everything the host writes into the run's JSON files goes through here, so every value,
declared or not, must map to JSON: string keys, no msgpack extension types, finite floats,
nesting and sizes within the bounds below. A violation raises :class:`SchemaError`, whose
``kind`` names the reason. stdlib + msgpack only: the guest imports this too.

>>> spec({"code": int}).check({"code": 0}, 0)
>>> spec({"code": int}).check({"code": "0"}, 0)
Traceback (most recent call last):
...
guest.schema.SchemaError: bad_field: code: str, want int
"""

from __future__ import annotations

import math

import msgpack

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = (
    "INT_MAX",
    "INT_MIN",
    "JSON",
    "KINDS",
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_STR",
    "Int",
    "ListOf",
    "OneOf",
    "Opt",
    "SchemaError",
    "Str",
    "spec",
)

MAX_DEPTH = 16  #: lists and maps nested inside the payload map
MAX_ITEMS = 4096  #: entries of one list or map
MAX_CONTAINERS = 8192  #: lists and maps in one payload: bounds memory even for 1 MiB of ``[]``
MAX_STR = 64 * 1024  #: characters of a string (bytes of a bytes value) not declared larger
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # what msgpack can carry

#: Reasons a payload is rejected (each is a counter of the host's frame decoder).
KINDS = ("bad_field", "ext_type", "bad_key", "too_deep", "too_large", "non_finite")

_EXT = (msgpack.ExtType, msgpack.Timestamp)


class SchemaError(ValueError):
    """A payload value that does not satisfy its schema.

    :param kind: one of :data:`KINDS`.
    :param why: what is wrong, for a person.
    :param key: the field or list index where it was found (outer fields are added to
        :attr:`path` as the error travels up).
    """

    def __init__(self, kind: str, why: str, key: str | int | None = None) -> None:
        super().__init__(kind, why)
        self.kind = kind
        self.why = why
        self.path: list[str | int] = [] if key is None else [key]

    @property
    def field(self) -> str:
        """Where, as ``workers[3].pid`` (empty for the payload itself)."""
        out = ""
        for k in reversed(self.path):
            out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else k)
        return out

    def __str__(self) -> str:
        return f"{self.kind}: {self.field}: {self.why}" if self.path else f"{self.kind}: {self.why}"


def _name(v: Any) -> str:
    return type(v).__name__


class _Spec:
    """A compiled schema node: ``check(value, depth)`` raises :class:`SchemaError`."""

    __slots__ = ()

    def check(self, v: Any, depth: int) -> None:
        raise NotImplementedError


class _Json(_Spec):
    """Any value that maps to JSON, within the bounds."""

    __slots__ = ()

    def check(self, v: Any, depth: int) -> None:
        t = type(v)
        if t is str or t is bytes:
            if len(v) > MAX_STR:
                raise SchemaError("too_large", f"{_name(v)} of {len(v)} > {MAX_STR}")
        elif t is int:
            if not INT_MIN <= v <= INT_MAX:
                raise SchemaError("too_large", "integer beyond 64 bits")
        elif t is float:
            if not math.isfinite(v):
                raise SchemaError("non_finite", f"float {v!r} has no JSON form")
        elif t is dict:
            _container(v, depth)
            for k, x in v.items():
                if type(k) is not str:
                    raise SchemaError("bad_key", f"map key {_short(k)} is {_name(k)}, not str")
                try:
                    self.check(x, depth + 1)
                except SchemaError as e:
                    e.path.append(k)
                    raise
        elif t is list or t is tuple:
            _container(v, depth)
            for i, x in enumerate(v):
                try:
                    self.check(x, depth + 1)
                except SchemaError as e:
                    e.path.append(i)
                    raise
        elif v is not None and t is not bool:
            raise _odd(v)


#: Any JSON-mappable value (how a map's undeclared fields are checked).
JSON = _Json()


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _odd(v: Any) -> SchemaError:
    if isinstance(v, _EXT):
        return SchemaError("ext_type", f"msgpack extension {_short(v)} has no JSON form")
    return SchemaError("bad_field", f"{_name(v)} is not a msgpack value")


def _container(v: Any, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise SchemaError("too_deep", f"nested deeper than {MAX_DEPTH}")
    if len(v) > MAX_ITEMS:
        raise SchemaError("too_large", f"{_name(v)} of {len(v)} entries > {MAX_ITEMS}")


class _Type(_Spec):
    """One scalar type (bool and int never stand in for each other)."""

    __slots__ = ("types", "want")

    def __init__(self, *types: type) -> None:
        self.types = types
        self.want = " or ".join(t.__name__ for t in types)

    def check(self, v: Any, depth: int) -> None:
        if type(v) not in self.types:
            raise (
                _odd(v)
                if isinstance(v, _EXT)
                else SchemaError("bad_field", f"{_name(v)}, want {self.want}")
            )
        JSON.check(v, depth)  # the bounds: finite, 64-bit


class Int(_Spec):
    """An integer in ``[lo, hi]`` (never a bool)."""

    __slots__ = ("hi", "lo")

    def __init__(self, lo: int = INT_MIN, hi: int = INT_MAX) -> None:
        self.lo, self.hi = lo, hi

    def check(self, v: Any, depth: int) -> None:
        if type(v) is not int:
            raise (
                _odd(v)
                if isinstance(v, _EXT)
                else SchemaError("bad_field", f"{_name(v)}, want int")
            )
        if not self.lo <= v <= self.hi:
            raise SchemaError("bad_field", f"{v} not in [{self.lo}, {self.hi}]")


class Str(_Spec):
    """A string of at most ``max_len`` characters (or bytes, with ``of=bytes``)."""

    __slots__ = ("max_len", "of")

    def __init__(self, max_len: int = MAX_STR, of: type = str) -> None:
        self.max_len, self.of = max_len, of

    def check(self, v: Any, depth: int) -> None:
        if type(v) is self.of and isinstance(v, (str, bytes)):
            if len(v) > self.max_len:
                raise SchemaError("too_large", f"{len(v)} > {self.max_len}")
            return
        if isinstance(v, _EXT):
            raise _odd(v)
        raise SchemaError("bad_field", f"{_name(v)}, want {self.of.__name__}")


class OneOf(_Spec):
    """One of the given scalar values."""

    __slots__ = ("values",)

    def __init__(self, *values: Any) -> None:
        self.values = values

    def check(self, v: Any, depth: int) -> None:
        if isinstance(v, _EXT):
            raise _odd(v)
        # type too: True == 1, and 1 must not pass for True
        if not any(v == x and type(v) is type(x) for x in self.values):
            raise SchemaError("bad_field", f"{_short(v)} not one of {self.values}")


class ListOf(_Spec):
    """A list of at most ``max_len`` items, each matching ``item``."""

    __slots__ = ("item", "max_len")

    def __init__(self, item: Any, max_len: int = MAX_ITEMS) -> None:
        self.item, self.max_len = spec(item), min(max_len, MAX_ITEMS)

    def check(self, v: Any, depth: int) -> None:
        if type(v) is not list and type(v) is not tuple:
            raise (
                _odd(v)
                if isinstance(v, _EXT)
                else SchemaError("bad_field", f"{_name(v)}, want a list")
            )
        _container(v, depth)
        if len(v) > self.max_len:
            raise SchemaError("too_large", f"{len(v)} items > {self.max_len}")
        item = self.item
        for i, x in enumerate(v):
            try:
                item.check(x, depth + 1)
            except SchemaError as e:
                e.path.append(i)
                raise


class Opt:
    """Marks a map field optional: ``{"main_ns": Opt(int)}``."""

    __slots__ = ("spec",)

    def __init__(self, inner: Any) -> None:
        self.spec = spec(inner)


class _Map(_Spec):
    __slots__ = ("fields", "required")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = {k: (v.spec if isinstance(v, Opt) else spec(v)) for k, v in fields.items()}
        self.required = tuple(k for k, v in fields.items() if not isinstance(v, Opt))

    def check(self, v: Any, depth: int) -> None:
        if type(v) is not dict:
            raise (
                _odd(v)
                if isinstance(v, _EXT)
                else SchemaError("bad_field", f"{_name(v)}, want a map")
            )
        _container(v, depth)
        for k in self.required:
            if k not in v:
                raise SchemaError("bad_field", "missing", k)
        fields = self.fields
        for k, x in v.items():
            if type(k) is not str:
                raise SchemaError("bad_key", f"map key {_short(k)} is {_name(k)}, not str")
            try:
                fields.get(k, JSON).check(x, depth + 1)
            except SchemaError as e:
                e.path.append(k)
                raise


def spec(x: Any) -> _Spec:
    """Compile the shorthand (see the module docstring) into a checkable schema node."""
    if isinstance(x, _Spec):
        return x
    if isinstance(x, dict):
        return _Map(x)
    if isinstance(x, list) and len(x) == 1:
        return ListOf(x[0])
    if isinstance(x, type) and x in _SCALARS:
        return _SCALARS[x]
    raise TypeError(f"not a schema: {x!r}")


_SCALARS: dict[type, _Spec] = {
    str: Str(),
    bytes: Str(1 << 30, bytes),  # the frame's own MAX_FRAME bounds it
    int: Int(),
    bool: _Type(bool),
    float: _Type(int, float),
    list: ListOf(JSON),
    dict: _Map({}),
}
