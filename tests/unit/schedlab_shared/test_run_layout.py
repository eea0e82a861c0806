import pytest

from schedlab_shared import run_layout
from schedlab_shared.bus.vmm import STREAMS


def test_file_names_stay_what_older_run_directories_hold():
    assert run_layout.STREAM_FILES == {
        "console": "console.log",
        "diag": "diag.log",
        "hvc0": "hvc0.log",
        "bulk": "bulk.raw",
        "shell": "shell.raw",
    }
    assert (
        run_layout.KERNEL_LOG,
        run_layout.MESSAGES,
        run_layout.RESULT,
        run_layout.ENDPOINTS,
    ) == (
        "kernel.log",
        "messages.jsonl",
        "result.json",
        "endpoints.json",
    )
    assert run_layout.process_log("monitor1") == "monitor1_proc.log"


def test_every_stream_has_a_file_and_collector_files_are_distinct():
    assert set(run_layout.STREAM_FILES) == set(STREAMS)
    assert len(set(run_layout.COLLECTOR_FILES)) == len(run_layout.COLLECTOR_FILES)
    assert run_layout.COLLECTOR_STATE not in run_layout.COLLECTOR_FILES


def test_monitor_files_round_trip_names(tmp_path):
    for name in ("monitor", "monitor1", "extra-a"):
        (tmp_path / run_layout.monitor_file(name)).write_text("")
    (tmp_path / "monitor.log").write_text("")  # not a samples file
    found = run_layout.monitor_files(tmp_path)
    assert list(found) == ["extra-a", "monitor", "monitor1"]
    assert found["monitor"].name == "monitor-monitor.jsonl"


@pytest.mark.parametrize("bad", ["", "../x"])
def test_a_monitor_name_cannot_leave_the_run_directory(bad):
    with pytest.raises(ValueError):
        run_layout.monitor_file(bad)
