"""schedlab guest: the Python PID 1 that runs inside the VM, and its wire contract.

Kept import-free: the guest starts under TCG emulation, and the host imports only the
contract modules :mod:`guest.wire`, :mod:`guest.schema`, :mod:`guest.control`,
:mod:`guest.spec`, :mod:`guest.rundoc` and :mod:`guest.transfer` (stdlib and msgpack only;
``tests/integration/style/test_imports.py`` holds both sides to that).

API summary
-----------
``guest.wire`` (guest -> host frames on the bulk port; stdlib + msgpack only)
    ``encode_frame(ftype, payload: dict) -> bytes``; ``decode_frame(data) -> Frame``
    (strict, raises ``WireError`` with ``.kind``); ``FrameDecoder(start_offset=0)`` with
    ``feed(data) -> list[Frame]``, ``finish() -> list[Frame]`` (rescans what is pending,
    counts the rest in ``stats.truncated_bytes``), ``pending: bytes``, ``consumed: int``,
    ``stats`` (``DecoderStats``: frames, bad_crc, oversize, unknown_type, bad_payload,
    bad_version, one counter per ``guest.schema.KINDS``, garbage_bytes, truncated_bytes;
    ``as_dict()``), ``on_reject(offset, type_byte, WireError)`` callback.
    ``Frame(type, payload, offset, size)`` (a named tuple); ``FrameType`` SYS_RDY, PHASE,
    STDOUT, STDERR, LOG, RESULT, EXIT, DUMP, SCHED_LOG, SCHED_ATTACH, SCHED_EXIT,
    SCHED_STOP (:mod:`guest.scx`); ``ExitCode`` (the EXIT frame's ``code``);
    ``SCHEMAS`` (each type's payload schema); ``check_payload(ftype, payload)``;
    ``MAX_FRAME``; ``STDIO_CHUNK``; ``LOG_LEVELS``; ``PANIC_PREFIX`` (starts each crash-text
    line the init writes to COM2).
``guest.schema`` (payload schemas: shorthand ``{"field": str, "n": Opt(Int(0))}``, bounds
    ``MAX_DEPTH``/``MAX_ITEMS``/``MAX_CONTAINERS``/``MAX_STR``, ``SchemaError`` with ``kind``
    and ``field``; stdlib + msgpack only)
``guest.spec`` (the cgroup-spinners parameters; stdlib only)
    ``RunSpec`` (validated named tuple), ``SpecError`` (``.key``: the run document field,
    e.g. ``scenario.workers``), ``FIELD_PATHS``, ``CRASHES``.
``guest.rundoc`` (the run document, host -> guest after SYS_RDY; stdlib only)
    ``build(spec, files=, scheduler=, entropy=, run_id=) -> dict``, ``validate(doc) ->
    RunDoc`` (``spec``, ``scenario``, ``scheduler``: ``Scheduler(path, args)``, ``files``:
    ``FileEntry(kind, name, mode, size, sha256)`` with ``.path``, ``entropy``),
    ``install_path(kind, name)`` (``/run/schedlab/inputs/<kind>/<name>``), ``KINDS``, bounds.
``guest.transfer`` (the frames of the run's inputs and the INPUTS_ACK answer)
    ``frames(doc, open_file)`` (host), ``InputsParser`` (guest), ``ack_ok``/``ack_error``,
    ``check_ack(payload, sent) -> Ack`` (host); ``guest.receiver.receive(fd, root)`` reads
    one transfer in the guest.
``guest.init`` (PID 1)
    ``main()``: the entry point (``/init`` runs ``from guest.init import main; main()``):
    forks the init process, reaps, turns a native fault or an unexpected exit of it into
    ``PANIC:`` lines on COM2 and COM1, powers off. ``supervise(child, system, root)`` for tests.
``guest.lifecycle`` (the init process)
    ``GuestRun(env).run()``: the phases boot, channels, workers, inputs, workload, report,
    over ``guest.env.Env`` (fixed inputs), ``guest.reporter.Reporter`` (COM2, bulk port,
    kernel log), ``guest.hostio.HostIo`` (stdio capture, control reader),
    ``guest.inputs.receive_inputs`` (the run's inputs) and ``guest.crash`` (PANIC text).
``guest.worker_parent``, ``guest.worker_pool``, ``guest.worktypes``
    the single-threaded worker parent (forked before any thread starts), the init process's
    handle on it (spawn, start, signal, ``ended`` events), and the work types workers run
    (``guest.workgroup``: grouped types and their shared state; ``guest.payload``: programs
    and callables), measured by ``guest.workmeter`` over the native loops of
    ``guest.native`` (``_schedlab_work``, built by the host).
``guest.workspec``, ``guest.workreport`` (contract modules)
    the work types' parameters, defaults and group sizes; the workers' report schema.
``guest.scx``
    a sched_ext scheduler under test: ``SchedulerRun`` (spawn, attach, watch, stop) and
    the exit parsers the host uses too; see its package docstring. ``guest.schedphase``
    runs it as the init's scheduler phase (start, watch, stop, SysRq-D on request).
``guest.scenario``
    scenarios: the scenario document (a contract), the work type table, the per-step
    records, and the runner that plays a document (cgroup v2, affinity, scheduling and
    memory policies, ops with their effect times); see its package docstring.
``guest.verdict``, ``guest.cgroups``
    the former guest-side checks over worker reports (the host judges now:
    ``verdicts.workers``); where the run's cgroups live.

Run-time imports avoid typing, pathlib, dataclasses and re: under TCG they cost seconds.

The kernel command line carries nothing of the run: the run document and files come over
the bulk port (:mod:`guest.transfer`). Host -> guest control bytes on ``/dev/hvc0``
(:mod:`guest.control`): ``SHUTDOWN_REQUEST`` (``b"S"``) shut down now, ``DUMP_REQUEST``
(``b"D"``) SysRq-D (the kernel's sched_ext dump), ``PROCDUMP_REQUEST`` (``b"P"``) a /proc
snapshot.
"""
