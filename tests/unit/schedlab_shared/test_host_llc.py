"""host_llc: CPU lists, LLC grouping from a fake sysfs, the performance-mode CPU check."""

from schedlab_shared.host_llc import cpu_list, host_llcs, performance_refusal


def _cpu(root, n, llc):
    for index, (level, shared) in enumerate(((1, str(n)), (2, str(n)), (3, llc))):
        d = root / f"cpu{n}" / "cache" / f"index{index}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "shared_cpu_list").write_text(f"{shared}\n")


def test_cpu_list_parses_ranges_and_singles():
    assert cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert cpu_list("") == []


def test_cpus_group_by_their_highest_level_cache(tmp_path):
    (tmp_path / "online").write_text("0-5\n")
    for n in range(6):
        _cpu(tmp_path, n, "0-2" if n < 3 else "3-5")
    assert host_llcs(tmp_path) == [[0, 1, 2], [3, 4, 5]]


def test_offline_cpus_are_left_out(tmp_path):
    (tmp_path / "online").write_text("0,2\n")
    for n in range(3):
        _cpu(tmp_path, n, "0-2")
    assert host_llcs(tmp_path) == [[0, 2]]


def test_performance_needs_a_service_cpu_beyond_the_vcpus():
    assert performance_refusal(3, [[0, 1], [2, 3]]) is None
    line = performance_refusal(4, [[0, 1], [2, 3]])
    assert line is not None and "\n" not in line
    assert "needs 5 host CPUs (4 vCPUs plus a service CPU)" in line and "offers 4" in line
