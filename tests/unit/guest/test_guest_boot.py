"""Boot steps against a temp root: sentinel, bulk-port discovery, module list, dump."""

import errno
import threading
import time

from guest import boot
from guest.dump import gather_dump


def test_check_image(tmp_path):
    (tmp_path / "etc").mkdir()
    assert "schedlab-image-id" in boot.check_image(tmp_path)
    (tmp_path / "etc/schedlab-image-id").write_text("abc\n")
    assert "truncated" in boot.check_image(tmp_path)
    (tmp_path / "schedlab.sentinel").write_text("ab")
    assert "!=" in boot.check_image(tmp_path)
    (tmp_path / "schedlab.sentinel").write_text("abc")
    assert boot.check_image(tmp_path) == ""
    (tmp_path / "etc/schedlab-image-id").write_text("\n")
    (tmp_path / "schedlab.sentinel").write_text("\n")
    assert "empty" in boot.check_image(tmp_path)


def test_find_bulk_port_waits_for_late_port(tmp_path):
    ports = tmp_path / "sys/class/virtio-ports"
    (ports / "vport0p0").mkdir(parents=True)
    (ports / "vport0p0/name").write_text("\n")
    (tmp_path / "dev").mkdir()

    def appear():
        time.sleep(0.1)
        (ports / "vport0p1").mkdir()
        (ports / "vport0p1/name").write_text("org.schedlab.bulk\n")
        time.sleep(0.05)
        (tmp_path / "dev/vport0p1").write_bytes(b"")  # devtmpfs node comes a bit later

    t = threading.Thread(target=appear)
    t.start()
    t0 = time.monotonic()
    assert boot.find_bulk_port(tmp_path, timeout_s=3) == str(tmp_path / "dev/vport0p1")
    assert 0.1 <= time.monotonic() - t0 < 1.0
    t.join()


def test_find_bulk_port_times_out(tmp_path):
    t0 = time.monotonic()
    assert boot.find_bulk_port(tmp_path, timeout_s=0.1) is None
    assert time.monotonic() - t0 < 1.0


def test_seen_ports_names_what_the_guest_has_for_the_not_found_line(tmp_path):
    assert boot.seen_ports(tmp_path).startswith("no ")
    ports = tmp_path / "sys/class/virtio-ports"
    (ports / "vport0p0").mkdir(parents=True)
    (ports / "vport0p0/name").write_text("\n")
    (ports / "vport0p2").mkdir()
    (ports / "vport0p2/name").write_text("org.schedlab.shell\n")
    (ports / "vport0p3").mkdir()  # a port whose name is not readable (yet)
    assert boot.seen_ports(tmp_path) == "vport0p0=-, vport0p2=org.schedlab.shell, vport0p3=?"


class RecSystem:
    def __init__(self, fail=None):
        self.mounts, self.fail = [], fail or {}

    def mount(self, source, target, fstype, flags=0, data=""):
        self.mounts.append(target)
        if fstype in self.fail:
            raise OSError(self.fail[fstype], "x")


def test_mount_all_creates_targets_and_classifies_errors(tmp_path):
    s = RecSystem(fail={"bpf": errno.ENODEV, "proc": errno.EPERM, "devtmpfs": errno.EBUSY})
    errs = boot.mount_all(s, tmp_path)
    assert len(s.mounts) == len(boot.MOUNTS)
    assert (tmp_path / "sys/kernel/tracing").is_dir()
    assert [e.split()[0] for e in errs] == ["required", "optional"]
    assert "proc" in errs[0] and "bpf" in errs[1]


def test_load_order_absolute_paths_and_read_failure(tmp_path):
    calls = []

    class S:
        def finit_module(self, fd, params=""):
            calls.append(fd)
            raise OSError(errno.EEXIST, "exists")

    moddir = tmp_path / "lib/modules/r"
    moddir.mkdir(parents=True)
    (tmp_path / "m.ko").write_bytes(b"")
    (moddir / "schedlab-load-order").write_text("/m.ko\n")
    assert [m.as_map() for m in boot.load_modules(S(), tmp_path, "r")] == [
        {"name": "m", "status": "present", "error": ""}
    ]
    assert len(calls) == 1
    assert boot.load_modules(S(), tmp_path, "other") == []


def test_gather_dump(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/schedstat").write_text("version 17\n")
    (tmp_path / "sys/kernel/sched_ext").mkdir(parents=True)
    (tmp_path / "sys/kernel/sched_ext/state").write_text("enabled\n")
    cg = tmp_path / "sys/fs/cgroup/schedlab/cg0"
    cg.mkdir(parents=True)
    (cg / "cpu.stat").write_text("usage_usec 5\n")
    assert gather_dump(tmp_path) == [
        ("/proc/schedstat", b"version 17\n"),
        ("/sys/kernel/sched_ext/state", b"enabled\n"),
        ("/sys/fs/cgroup/schedlab/cg0/cpu.stat", b"usage_usec 5\n"),
    ]
