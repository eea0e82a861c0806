"""A stand-in for qemu-system-x86_64 speaking the testbed's port protocol, with no VM.

Behaviour from $FAKE_L1_MODE; each start appends its pid to $FAKE_L1_PIDS (one per line).
"""

import os
import sys
import time

from orchestrator.testbed.protocol import PORT_STATUS, PORT_STDERR, PORT_STDOUT


def _opts(arg):
    return dict(kv.split("=", 1) for kv in arg.split(",") if "=" in kv)


def _ports(argv):
    chardevs, ports = {}, {}
    for a in argv:
        if a.startswith("socket,id="):
            chardevs[_opts(a)["id"]] = int(_opts(a)["fd"])
        elif a.startswith("virtserialport,"):
            ports[_opts(a)["name"]] = chardevs[_opts(a)["chardev"]]
    return ports


def main():
    argv = sys.argv[1:]
    ports = _ports(argv)
    console = argv[argv.index("-serial") + 1].removeprefix("file:")
    with open(console, "w") as fh:
        fh.write("fake L1 console\n")
    pids = os.environ["FAKE_L1_PIDS"]
    with open(pids, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    with open(pids + ".argv", "w") as fh:
        fh.write("\n".join(argv))
    starts = len(open(pids).read().split())
    mode = os.environ["FAKE_L1_MODE"]

    def send(name, data):
        view = memoryview(data)
        while view:
            view = view[os.write(ports[name], view) :]

    if mode == "crash-always" or (mode == "crash-once" and starts == 1):
        return  # like a panic with -no-reboot: QEMU exits 0, no status
    send(PORT_STATUS, b"phase modules\n")
    if mode == "l1-error":
        send(PORT_STATUS, b"l1-error insmod kvm_amd.ko failed\n")
        return
    send(PORT_STATUS, b"phase ready 1.5\n")
    if mode == "hang":
        time.sleep(1000)
    if mode == "crash-after-ready":
        return
    if mode == "big":
        send(PORT_STDOUT, bytes(range(256)) * 20000)
    else:
        send(PORT_STDOUT, b"out\n")
        send(PORT_STDERR, b"err\n")
    send(PORT_STATUS, b"exit 7\n")


if __name__ == "__main__":
    main()
