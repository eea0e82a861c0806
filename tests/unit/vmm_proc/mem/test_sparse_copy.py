"""sparse_copy: data ranges only, holes stay holes, contents equal."""

import os

from vmm_proc.mem.sparse_copy import copy_sparse, data_ranges


def test_copy_keeps_data_and_skips_holes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    size = 8 << 20
    with open(src, "wb") as f:
        f.truncate(size)
        f.seek(1 << 20)
        f.write(b"A" * 4096)
        f.seek(6 << 20)
        f.write(b"B" * 100)
    with open(dst, "wb") as f:
        f.truncate(size)
    with open(src, "rb") as f:
        ranges = data_ranges(f.fileno(), size)
    assert sum(e - s for s, e in ranges) < size  # the filesystem reports holes
    copied = copy_sparse(str(src), str(dst), size)
    assert copied < size
    assert dst.read_bytes() == src.read_bytes()
    assert os.stat(dst).st_blocks * 512 < size
