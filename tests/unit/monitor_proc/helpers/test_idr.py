"""XArray / IDR walks over synthetic guest memory: real node trees, and corrupt ones."""

from __future__ import annotations

import struct

import pytest

from monitor_proc.helpers.idr import idr_for_each
from monitor_proc.helpers.xarray import xa_entries
from monitor_proc.program import BadDataError
from tests.unit.monitor_proc.bpf_guest import MAP_IDR, PROG_IDR, BpfGuest

OBJ = 0xFFFF_8880_0330_0000


def _guest_with(entries: dict[int, int], base: int = 0) -> tuple[BpfGuest, object]:
    g = BpfGuest()
    g.idr(PROG_IDR, entries, base=base)
    return g, g.writable_program()


def test_empty_idr_lists_nothing() -> None:
    g, prog = _guest_with({})
    assert idr_for_each(prog, PROG_IDR) == []


def test_single_entry_at_index_zero_lives_in_the_head() -> None:
    g, prog = _guest_with({1: OBJ}, base=1)  # id 1 = index 0 with idr_base 1
    assert g.read_vm(PROG_IDR + 8, 8) == struct.pack("<Q", OBJ)  # no node
    assert idr_for_each(prog, PROG_IDR) == [(1, OBJ)]


def test_one_level_tree() -> None:
    entries = {i: OBJ + 0x100 * i for i in (1, 2, 5, 63)}
    g, prog = _guest_with(entries)
    assert len(g.xa_nodes) == 1
    assert idr_for_each(prog, PROG_IDR) == sorted(entries.items())


def test_three_level_tree_in_id_order() -> None:
    ids = (1, 64, 65, 4095, 4096, 70000)
    entries = {i: OBJ + 0x40 * n for n, i in enumerate(ids)}
    g, prog = _guest_with(entries)
    assert len(g.xa_nodes) > 3
    assert idr_for_each(prog, PROG_IDR) == sorted(entries.items())


def test_value_and_internal_entries_are_not_objects() -> None:
    g, prog = _guest_with({1: OBJ, 2: OBJ + 0x40, 3: OBJ + 0x80})
    node = g.xa_nodes[0]
    g.write_u64(node + 40 + 8 * 2, 0x15)  # a value entry (low bit set)
    g.write_u64(node + 40 + 8 * 3, 0x402)  # the retry entry
    assert idr_for_each(prog, PROG_IDR) == [(1, OBJ)]


def test_limit_is_enforced() -> None:
    g, prog = _guest_with({i: OBJ + 0x40 * i for i in range(1, 20)})
    with pytest.raises(BadDataError, match="more than 5 entries"):
        idr_for_each(prog, PROG_IDR, limit=5)


def test_a_node_pointing_at_its_parent_is_refused_not_walked_forever() -> None:
    g, prog = _guest_with({1: OBJ, 100: OBJ + 0x40})
    root = g.xa_nodes[0]
    g.write_u64(root + 40 + 8 * 1, root | 2)  # slot 1 -> the root itself: a cycle
    with pytest.raises(BadDataError, match="does not belong"):
        idr_for_each(prog, PROG_IDR)


def test_a_node_that_is_its_own_child_is_refused() -> None:
    """Shifts fall by one chunk per level and each child must name its parent and slot,
    so a walk is at most 11 levels deep; a node listing itself breaks the shift rule."""
    g, prog = _guest_with({1: OBJ})
    root = g.xa_nodes[0]
    g.write_va(root, struct.pack("<BB", 6, 5))
    g.write_u64(root + 8, root)  # parent = itself
    g.write_u64(root + 40 + 8 * 5, root | 2)
    with pytest.raises(BadDataError, match="does not belong"):
        idr_for_each(prog, PROG_IDR)


def test_the_node_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor_proc.helpers import xarray

    g, prog = _guest_with({1: OBJ, 100: OBJ + 0x40, 200: OBJ + 0x80})
    assert len(g.xa_nodes) == 4
    monkeypatch.setattr(xarray, "MAX_NODES", 3)
    with pytest.raises(BadDataError, match="more than 3 nodes"):
        idr_for_each(prog, PROG_IDR)


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [(0, 3, "shift 3"), (0, 64, "shift 64"), (8, 0, "does not belong")],
)
def test_corrupt_node_fields_are_refused(offset: int, value: int, match: str) -> None:
    g, prog = _guest_with({1: OBJ, 100: OBJ + 0x40})
    child = g.xa_nodes[1]
    if offset == 0:
        g.write_va(child, bytes([value]))
    else:
        g.write_u64(child + offset, value)  # parent pointer
    with pytest.raises(BadDataError, match=match):
        idr_for_each(prog, PROG_IDR)


def test_a_node_pointer_into_user_space_is_refused() -> None:
    g, prog = _guest_with({})
    g.write_u64(PROG_IDR + 8, 0x7F00_0000_1002)
    with pytest.raises(BadDataError, match="not a kernel address"):
        xa_entries(prog, PROG_IDR)


def test_two_idrs_do_not_share_state() -> None:
    g = BpfGuest()
    g.idr(PROG_IDR, {1: OBJ})
    g.idr(MAP_IDR, {7: OBJ + 0x80, 300: OBJ + 0xC0})
    prog = g.writable_program()
    assert idr_for_each(prog, PROG_IDR) == [(1, OBJ)]
    assert idr_for_each(prog, MAP_IDR) == [(7, OBJ + 0x80), (300, OBJ + 0xC0)]
