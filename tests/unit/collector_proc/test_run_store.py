"""The remote store's files: chunks appended in order only, duplicates and gaps refused with
the store's position, a torn write cut back on restart, names that could escape refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector_proc.store import RunStore, StoreRefused
from schedlab_shared.bus.store import MAX_CHUNK


def test_chunks_append_in_order_and_the_position_survives_a_restart(tmp_path: Path) -> None:
    s = RunStore(tmp_path)
    assert s.position("h", "r", "console.log") == (0, 0)
    assert s.append("h", "r", "console.log", 0, 0, b"abc") == (True, 1, 3)
    assert s.append("h", "r", "console.log", 1, 3, b"de") == (True, 2, 5)
    assert s.append("h", "r", "console.log", 1, 3, b"de") == (False, 2, 5)  # duplicate
    assert s.append("h", "r", "console.log", 5, 5, b"zz") == (False, 2, 5)  # gap
    again = RunStore(tmp_path)
    assert again.position("h", "r", "console.log") == (2, 5)
    assert (tmp_path / "h" / "r" / "console.log").read_bytes() == b"abcde"


def test_bytes_written_but_never_acknowledged_are_cut_on_restart(tmp_path: Path) -> None:
    s = RunStore(tmp_path)
    s.append("h", "r", "f.log", 0, 0, b"kept")
    with open(tmp_path / "h" / "r" / "f.log", "ab") as f:
        f.write(b"torn")  # the store died after the data, before its state
    again = RunStore(tmp_path)
    assert again.position("h", "r", "f.log") == (1, 4)
    assert (tmp_path / "h" / "r" / "f.log").read_bytes() == b"kept"
    state = json.loads((tmp_path / "h" / "r" / ".store-state" / "f.log.json").read_text())
    assert state == {"next_seq": 1, "offset": 4}


@pytest.mark.parametrize(
    ("host", "run", "name"),
    [
        ("..", "r", "f"),
        ("h", "../x", "f"),
        ("h", "r", ".store-state"),
        ("h", "r", "a/b"),
        ("", "r", "f"),
    ],
)
def test_names_that_are_not_one_plain_component_are_refused(
    tmp_path: Path, host: str, run: str, name: str
) -> None:
    with pytest.raises(StoreRefused, match="not a plain file name"):
        RunStore(tmp_path).append(host, run, name, 0, 0, b"x")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_an_oversized_chunk_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreRefused, match="exceeds"):
        RunStore(tmp_path).append("h", "r", "f", 0, 0, b"x" * (MAX_CHUNK + 1))
