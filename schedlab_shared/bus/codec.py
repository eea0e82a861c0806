"""Message classes, the request/reply envelope and the msgpack codec of the schedlab bus.

Every bus message is a frozen dataclass registered under a dotted type name. A request
travels as ``{v, id, type, body}``, its reply as ``{id, status, errno, reason, body}``, and
a published event as two frames ``[topic, body]``. msgpack only: never pickle.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import msgpack

__all__ = (
    "PROTOCOL_VERSION",
    "Status",
    "BusError",
    "Message",
    "message",
    "lookup",
    "to_body",
    "from_body",
    "pack",
    "unpack",
    "encode_request",
    "decode_request",
    "encode_reply",
    "decode_reply",
    "Reply",
)

PROTOCOL_VERSION = 1
# A control message is small; stream chunks are bounded by the VMM's read size.
MAX_MESSAGE = 16 << 20


class Status(enum.IntEnum):
    """Reply status codes, shared by every control channel."""

    OK = 0
    BAD_MESSAGE = 1  # undecodable or missing/ill-typed fields
    UNKNOWN_TYPE = 2
    NOT_ALLOWED = 3  # valid request, wrong state
    NOT_FOUND = 4
    GONE = 5  # data no longer retained (replay past the retention window)
    INTERNAL = 6
    TIMEOUT = 7  # set by the client when no reply came in time


class BusError(Exception):
    """A request that failed: its status and one-line reason."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(f"{status.name.lower()}: {reason}")
        self.status = status
        self.reason = reason


class Message:
    """Base of all bus messages; subclasses are frozen dataclasses made with ``@message``."""

    TYPE: ClassVar[str] = ""
    REPLY: ClassVar[type[Message] | None] = None


M = TypeVar("M", bound=Message)
_REGISTRY: dict[str, type[Message]] = {}
_CHECKS: dict[type[Message], tuple[tuple[str, tuple[type, ...] | None, bool], ...]] = {}


def _accepted(hint: Any) -> tuple[type, ...] | None:
    """Python types a field may hold on the wire; None means "don't check"."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out: list[type] = []
        for arg in typing.get_args(hint):
            acc = _accepted(arg)
            if acc is None:
                return None
            out.extend(acc)
        return tuple(out)
    if hint is type(None):
        return (type(None),)
    if hint is float:
        return (int, float)
    if hint is bool:
        return (bool,)
    if hint is int:
        return (int,)
    if hint in (str, bytes):
        return (hint,)
    if origin in (list, tuple) or hint in (list, tuple):
        return (list, tuple)
    if origin is dict or hint is dict:
        return (dict,)
    return None


@typing.dataclass_transform(frozen_default=True)
def message(type_name: str, reply: type[Message] | None = None) -> Callable[[type[M]], type[M]]:
    """Register a frozen dataclass as the bus message ``type_name``.

    ``dataclass_transform`` tells type checkers that the decorated class is a frozen
    dataclass, so its fields and constructor are checked like any dataclass.
    """

    def wrap(cls: type[M]) -> type[M]:
        dc: Any = dataclasses.dataclass(frozen=True)(cls)
        dc.TYPE = type_name
        dc.REPLY = reply
        hints = typing.get_type_hints(dc)
        checks = []
        for f in dataclasses.fields(dc):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            checks.append((f.name, _accepted(hints[f.name]), required))
        _CHECKS[dc] = tuple(checks)
        if type_name in _REGISTRY:
            raise ValueError(f"bus message type {type_name!r} registered twice")
        _REGISTRY[type_name] = dc
        return dc

    return wrap


def lookup(type_name: str) -> type[Message]:
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise BusError(Status.UNKNOWN_TYPE, f"unknown message type {type_name!r}") from None


def to_body(msg: Message) -> dict[str, Any]:
    return {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}  # type: ignore[arg-type]


def from_body(cls: type[M], body: Any) -> M:
    """Validate a decoded map against ``cls``: required fields present, primitive types right."""
    if not isinstance(body, dict):
        raise BusError(Status.BAD_MESSAGE, f"{cls.TYPE}: body is not a map")
    kwargs: dict[str, Any] = {}
    for name, accepted, required in _CHECKS[cls]:
        if name not in body:
            if required:
                raise BusError(Status.BAD_MESSAGE, f"{cls.TYPE}: missing field {name!r}")
            continue
        value = body[name]
        if accepted is not None and not isinstance(value, accepted):
            raise BusError(
                Status.BAD_MESSAGE,
                f"{cls.TYPE}: field {name!r} is {type(value).__name__}, "
                f"expected {'/'.join(t.__name__ for t in accepted)}",
            )
        kwargs[name] = value
    return cls(**kwargs)


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    if len(data) > MAX_MESSAGE:
        raise BusError(Status.BAD_MESSAGE, f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise BusError(Status.BAD_MESSAGE, f"undecodable msgpack: {exc}") from None


def encode_request(req_id: int, msg: Message) -> bytes:
    return pack({"v": PROTOCOL_VERSION, "id": req_id, "type": msg.TYPE, "body": to_body(msg)})


def decode_request(data: bytes) -> tuple[int, Message]:
    """Decode and validate a request; errors carry the id when it could be read (else -1)."""
    env = unpack(data)
    if not isinstance(env, dict) or not isinstance(env.get("id"), int):
        raise BusError(Status.BAD_MESSAGE, "request envelope lacks an integer id")
    if env.get("v") != PROTOCOL_VERSION:
        raise BusError(Status.BAD_MESSAGE, f"protocol version {env.get('v')!r} not supported")
    type_name = env.get("type")
    if not isinstance(type_name, str):
        raise BusError(Status.BAD_MESSAGE, "request envelope lacks a type")
    return env["id"], from_body(lookup(type_name), env.get("body", {}))


@dataclasses.dataclass(frozen=True)
class Reply:
    """A decoded reply envelope."""

    id: int
    status: Status
    reason: str
    body: dict[str, Any]

    def ok(self) -> bool:
        return self.status is Status.OK


def encode_reply(
    req_id: int, status: Status = Status.OK, reason: str = "", body: Message | dict | None = None
) -> bytes:
    if isinstance(body, Message):
        body = to_body(body)
    return pack(
        {
            "id": req_id,
            "status": int(status),
            "errno": int(status),
            "reason": reason,
            "body": body or {},
        }
    )


def decode_reply(data: bytes) -> Reply:
    env = unpack(data)
    if not isinstance(env, dict) or not isinstance(env.get("id"), int):
        raise BusError(Status.BAD_MESSAGE, "reply envelope lacks an integer id")
    try:
        status = Status(int(env.get("status", -1)))
    except (ValueError, TypeError):
        raise BusError(Status.BAD_MESSAGE, f"unknown reply status {env.get('status')!r}") from None
    body = env.get("body") or {}
    if not isinstance(body, dict):
        raise BusError(Status.BAD_MESSAGE, "reply body is not a map")
    return Reply(env["id"], status, str(env.get("reason", "")), body)
