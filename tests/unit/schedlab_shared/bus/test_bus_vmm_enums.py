from schedlab_shared.bus import vmm
from schedlab_shared.bus.codec import from_body, pack, to_body, unpack


def test_enum_values_travel_as_plain_strings_and_compare_equal():
    reply = vmm.StatusReply(
        vmm.VmState.EXITED, "qemu", "r1", 1.0, [], {}, vmm.ExitReason.GUEST_EXIT
    )
    body = unpack(pack(to_body(reply)))
    assert body["state"] == "exited" and type(body["state"]) is str
    back = from_body(vmm.StatusReply, body)
    assert (
        back.state == vmm.VmState.EXITED
        and vmm.ExitReason(back.exit_reason) is vmm.ExitReason.GUEST_EXIT
    )


def test_stop_defaults_to_the_stopped_reason():
    assert vmm.ExitReason(vmm.Stop().reason) is vmm.ExitReason.STOPPED


def test_streams_are_the_five_names_the_run_files_hold():
    assert vmm.STREAMS == ("console", "diag", "hvc0", "bulk", "shell")
