"""snapshot_cache: the key covers what makes a snapshot valid; one directory per key."""

from orchestrator import snapshot_cache as sc


def _key(tmp_path, **over):
    kernel, initrd = tmp_path / "vmlinux", tmp_path / "initrd"
    if not kernel.exists():
        kernel.write_bytes(b"kernel")
        initrd.write_bytes(b"initrd")
    args = dict(topology="1,1,2,1", mem_mib=512, cmdline="quiet", version="1.0", performance=False)
    args.update(over)
    return sc.snapshot_key(kernel, initrd, **args)


def test_each_input_changes_the_key_and_the_directory(tmp_path):
    base = _key(tmp_path)
    assert all(isinstance(v, str) for v in base.values())
    variants = [
        _key(tmp_path, topology="1,2,2,1"),
        _key(tmp_path, mem_mib=1024),
        _key(tmp_path, cmdline="quiet oops=panic"),
        _key(tmp_path, version="1.1"),
        _key(tmp_path, performance=True),
    ]
    dirs = {sc.snapshot_dir(k, tmp_path) for k in [base, *variants]}
    assert len(dirs) == 6 and all(k != base for k in variants)
    assert sc.snapshot_dir(dict(reversed(list(base.items()))), tmp_path) == sc.snapshot_dir(
        base, tmp_path
    )


def test_file_content_is_part_of_the_key(tmp_path):
    before = _key(tmp_path)
    (tmp_path / "initrd").write_bytes(b"another image")
    assert _key(tmp_path)["initramfs"] != before["initramfs"]
    assert _key(tmp_path)["kernel"] == before["kernel"]


def test_only_a_complete_directory_is_usable(tmp_path):
    d = tmp_path / "snap"
    d.mkdir()
    for name in sc.SNAPSHOT_FILES[:-1]:
        (d / name).write_bytes(b"x")
        assert not sc.usable(d)
    (d / sc.SNAPSHOT_FILES[-1]).write_bytes(b"x")
    assert sc.usable(d)
