import os
from pathlib import Path

from orchestrator.initramfs.builder import _prune


def test_prune_keeps_most_recently_used(tmp_path: Path) -> None:
    for i in range(5):
        for ext in (".cpio", ".json"):
            p = tmp_path / f"img{i}{ext}"
            p.write_text("x")
            os.utime(p, (1000 + i, 1000 + i))
    os.utime(tmp_path / "img0.cpio", (5000, 5000))  # a cache hit refreshed the oldest
    _prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "img0.cpio",
        "img0.json",
        "img4.cpio",
        "img4.json",
    ]
