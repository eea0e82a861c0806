"""schedlab guest: the Python PID 1 that runs inside the VM, and its wire contract.

Kept import-free: the guest starts under TCG emulation, and the host imports only
:mod:`guest.wire` and :mod:`guest.spec`.

API summary
-----------
``guest.wire`` (guest -> host frames on the bulk port; stdlib + msgpack only)
    ``encode_frame(ftype, payload: dict) -> bytes``; ``decode_frame(data) -> Frame``
    (strict, raises ``WireError`` with ``.kind``); ``FrameDecoder(start_offset=0)`` with
    ``feed(data) -> list[Frame]``, ``finish() -> list[Frame]`` (recovers, then counts
    ``stats.truncated_bytes``), ``pending``, ``consumed``, ``stats`` (``DecoderStats``).
    ``Frame(type, payload, offset, size)``; ``FrameType`` SYS_RDY, PHASE, STDOUT, STDERR,
    LOG, RESULT, EXIT, DUMP; ``REQUIRED_FIELDS``; ``MAX_FRAME``; ``STDIO_CHUNK``.
``guest.spec`` (run spec from ``schedlab.*`` kernel command-line keys)
    key-name constants, ``RunSpec``, ``parse_cmdline(text) -> RunSpec`` (raises
    ``SpecError``), ``to_cmdline(spec) -> list[str]`` for the host.
``guest.init``
    ``main()``: the PID-1 entry point (``/init`` runs ``from guest.init import main; main()``).
``guest.workload``, ``guest.cgroups``, ``guest.verdict``
    the ``cgroup-spinners`` scenario: cgroup setup, spinning workers, pass/fail verdict.

Host -> guest control bytes on ``/dev/hvc0``: ``b"S"`` shut down now, ``b"D"`` dump.
"""
