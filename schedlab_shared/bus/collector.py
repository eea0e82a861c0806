"""Contract of the collector_proc channels."""

from __future__ import annotations

from .codec import Message, message

__all__ = ("CollectorStatusReply", "CollectorStatus", "GuestMessage", "MessagesReply", "Messages")


@message("collector.status.reply")
class CollectorStatusReply(Message):
    """``{sys_rdy, result, exit_code, vm_exited, complete, streams, decoder, messages}``.

    ``sys_rdy``: host wall-clock time SYS_RDY was decoded, or 0.0; ``result``: the guest's
    RESULT payload or None; ``exit_code``: the guest's EXIT code or None; ``complete``: the VM
    exited and every stream was drained; ``streams``: ``{name: {"next_seq", "bytes"}}``;
    ``decoder``: frame-decoder counters; ``messages``: decoded guest messages so far;
    ``sched``: the scheduler under test as reported so far, ``{attach, exit, stop}`` (the
    first SCHED_ATTACH, SCHED_EXIT, SCHED_STOP payloads, each absent until it came),
    ``log`` (per stream: ``dropped``, ``eof``, ``bytes``), ``dumps`` (bytes per trigger).
    """

    sys_rdy: float
    result: dict | None
    exit_code: int | None
    vm_exited: bool
    complete: bool
    streams: dict
    decoder: dict
    messages: int
    vm_exit_reason: str = ""
    vm_exit_detail: str = ""
    sched: dict | None = None


@message("collector.status", reply=CollectorStatusReply)
class CollectorStatus(Message):
    """Request ``{}`` -> CollectorStatusReply."""


@message("collector.guest_message")
class GuestMessage(Message):
    """Event ``{index, type, payload, host_time}`` on ``vm.<id>.guest.<type>``.

    ``index`` numbers decoded frames from 0, so a consumer can drop duplicates after a
    collector restart.
    """

    index: int
    type: str
    payload: dict
    host_time: float


@message("collector.messages.reply")
class MessagesReply(Message):
    """``{messages: [GuestMessage body, ...]}``."""

    messages: list


@message("collector.messages", reply=MessagesReply)
class Messages(Message):
    """Request ``{from_index, limit}``: decoded guest messages by index."""

    from_index: int = 0
    limit: int = 1000
