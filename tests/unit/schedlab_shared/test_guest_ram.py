import os

import pytest

from schedlab_shared import guest_ram
from schedlab_shared.vm_config import VmConfig


def test_vm_config_and_node_files_use_the_one_name():
    cfg = VmConfig(run_id="r1", engine="qemu", kernel="k", initrd="i", cmdline="")
    assert cfg.guest_ram_path == guest_ram.ram_path("r1") == "/dev/shm/schedlab-r1-mem"
    assert guest_ram.node_path(cfg.guest_ram_path, 0, 1) == cfg.guest_ram_path
    assert guest_ram.node_path(cfg.guest_ram_path, 1, 2) == "/dev/shm/schedlab-r1-mem1"


def test_leftovers_find_only_the_run_s_files():
    tag = f"ramtest{os.getpid()}"
    mine, other = guest_ram.ram_path(tag), guest_ram.ram_path(f"x{tag}")
    try:
        for p in (mine, mine + "1", other):
            open(p, "wb").close()
        assert sorted(guest_ram.run_leftovers(tag)) == [mine, mine + "1"]
    finally:
        for p in (mine, mine + "1", other):
            os.unlink(p)


@pytest.mark.parametrize("bad", ["", "a/b"])
def test_a_tag_cannot_leave_dev_shm(bad):
    with pytest.raises(ValueError):
        guest_ram.ram_path(bad)
