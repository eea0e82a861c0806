"""Doubly linked lists (:linux:`include/linux/list.h`), walked with a bound.

The guest is untrusted and lists change under our feet: every walk stops at ``limit``
nodes and raises rather than looping on a corrupt or torn list.
"""

from __future__ import annotations

from collections.abc import Iterator

from monitor_proc.program import BadDataError, Program

__all__ = ("DEFAULT_LIMIT", "list_for_each", "list_for_each_entry")

DEFAULT_LIMIT = 1 << 20


def list_for_each(prog: Program, head: int, limit: int = DEFAULT_LIMIT) -> Iterator[int]:
    """Iterate over the nodes of a list.

    >>> [hex(n) for n in list_for_each(prog, prog.symbol("init_task") + tasks_off)]

    :param head: ``struct list_head *`` of the list head.
    :param limit: most nodes to visit.
    :returns: iterator of ``struct list_head *``
    :raises BadDataError: more than ``limit`` nodes, or a NULL link.
    """
    node = prog.read_u64(head)  # head->next
    for _ in range(limit):
        if node == head:
            return
        if node == 0:
            raise BadDataError(f"NULL link in list at {head:#x}")
        yield node
        node = prog.read_u64(node)
    raise BadDataError(f"list at {head:#x} has more than {limit} nodes (corrupt or torn)")


def list_for_each_entry(
    prog: Program, type_name: str, head: int, member: str, limit: int = DEFAULT_LIMIT
) -> Iterator[int]:
    """Iterate over the entries of a list.

    :param type_name: the entries' struct name, e.g. ``"task_struct"``.
    :param head: ``struct list_head *`` of the list head.
    :param member: the ``list_head`` member of the entries that links them.
    :returns: iterator of ``type_name *``
    """
    off = prog.member_offset(type_name, member)
    for node in list_for_each(prog, head, limit):
        yield node - off
