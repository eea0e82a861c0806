"""SRAT and SLIT for multi-node topologies (ACPI 6.5 sections 5.2.16 and 5.2.17).

Each topology node is one proximity domain; guest RAM is cut into equal node shares in
address order, boundaries aligned to 8 MiB (as QEMU's pc machine does).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from schedlab_shared.topology import Topology
from vmm_proc.acpi.sdt import table

__all__ = ("LOCAL_DISTANCE", "REMOTE_DISTANCE", "build_slit", "build_srat", "split_memory_by_node")

SRAT_REVISION, SLIT_REVISION = 3, 1
NODE_MEM_ALIGN = 8 << 20
LOCAL_DISTANCE, REMOTE_DISTANCE = 10, 20
_ENABLED = 1
_XAPIC_MAX_ID = 0xFE


def split_memory_by_node(
    regions: Sequence[tuple[int, int]], nodes: int
) -> list[tuple[int, int, int]]:
    """Assign RAM to nodes: ``[(gpa, size, node), ...]`` in address order.

    :raises ValueError: when a node would get less than NODE_MEM_ALIGN bytes.
    """
    total = sum(size for _, size in regions)
    share = total // nodes // NODE_MEM_ALIGN * NODE_MEM_ALIGN
    if share == 0:
        raise ValueError(
            f"{total} bytes of RAM cannot give {nodes} nodes {NODE_MEM_ALIGN} bytes each"
        )
    out: list[tuple[int, int, int]] = []
    node, left = 0, share
    for start, size in sorted(regions):
        while size:
            take = size if node == nodes - 1 else min(size, left)
            out.append((start, take, node))
            start, size, left = start + take, size - take, left - take
            if left == 0 and node < nodes - 1:
                node, left = node + 1, share
    return out


def build_srat(topology: Topology, regions: Sequence[tuple[int, int]]) -> bytes:
    """CPU (local APIC or x2APIC) and memory affinity entries, one domain per node."""
    body = bytearray(struct.pack("<IQ", 1, 0))  # reserved (1 for compatibility), reserved
    for cpu in topology.cpus():
        if cpu.apic_id <= _XAPIC_MAX_ID:
            dom = cpu.node
            body += struct.pack(
                "<BBBBIB3sI",
                0,
                16,
                dom & 0xFF,
                cpu.apic_id,
                _ENABLED,
                0,
                (dom >> 8).to_bytes(3, "little"),
                0,
            )
        else:
            body += struct.pack("<BBHIIIII", 2, 24, 0, cpu.node, cpu.apic_id, _ENABLED, 0, 0)
    for start, size, node in split_memory_by_node(regions, topology.nodes):
        body += struct.pack(
            "<BBIHIIIIIIQ",
            1,
            40,
            node,
            0,
            start & 0xFFFFFFFF,
            start >> 32,
            size & 0xFFFFFFFF,
            size >> 32,
            0,
            _ENABLED,
            0,
        )
    return table(b"SRAT", SRAT_REVISION, bytes(body))


def build_slit(nodes: int, distances: Sequence[Sequence[int]] | None = None) -> bytes:
    """The node distance matrix (default 10 local, 20 remote).

    :param distances: ``nodes`` x ``nodes`` values in 10..254, 10 on the diagonal.
    """
    matrix = distances or [
        [LOCAL_DISTANCE if i == j else REMOTE_DISTANCE for j in range(nodes)] for i in range(nodes)
    ]
    if len(matrix) != nodes or any(len(row) != nodes for row in matrix):
        raise ValueError(f"SLIT: distance matrix must be {nodes}x{nodes}")
    for i, row in enumerate(matrix):
        for j, d in enumerate(row):
            if (i == j and d != LOCAL_DISTANCE) or not LOCAL_DISTANCE <= d <= 254:
                raise ValueError(f"SLIT: bad distance {d} from node {i} to {j}")
    body = struct.pack("<Q", nodes) + bytes(d for row in matrix for d in row)
    return table(b"SLIT", SLIT_REVISION, body)
