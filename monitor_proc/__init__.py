"""monitor_proc: reads a guest kernel's scheduler state from the host, through guest RAM.

Nothing is asked of the guest: the VMM's shared RAM file is mapped read-only, kernel
symbols come from the image's own kallsyms tables (or a real System.map), struct layouts
from its BTF, and virtual addresses are translated like the kernel maps itself.

API (drgn-style; every read raises ``FaultError`` on unmapped memory)::

    from monitor_proc.memory import GuestPhysMemory, FaultError
    from monitor_proc.program import Program, BadDataError
    from monitor_proc.translate import TranslationError
    from monitor_proc.helpers.sched import rq_sample, cpu_rq, cpu_curr

    mem = GuestPhysMemory(layout)          # [{"gpa", "size", "path", "offset"}], read-only
    prog = Program(vmlinux, mem, system_map=None)   # ~0.5 s warm; first run + ~1 s kallsyms
    prog.nr_cpu_ids                        # int, read from the guest each time
    rq_sample(prog, cpu)                   # {"nr_running", "rq_clock", "clock_task",
                                           #  "nr_switches", "cfs_h_nr_queued",
                                           #  "scx_nr_running", "curr_pid", "curr_comm"}
    mem.close()

``rq_sample`` includes only the fields this kernel's BTF has (``nr_running`` and
``rq_clock`` always). Until the kernel is in memory and its run queues are set up, calls
raise ``TranslationError`` (image/page tables not found yet; retried on the next call),
``BadDataError`` (absurd ``nr_cpu_ids``, ``rq->cpu`` mismatch) or ``FaultError``: a
sampler treats all three as "not ready / torn read, try again".

Lower layers: :mod:`.btf` (``Btf.load(path).struct("rq").member("scx.nr_running")``,
``datasec_var``), :mod:`.kallsyms` (``load_symbols(vmlinux, system_map=None)`` ->
:class:`.symbols.SymbolTable`, cached in ``<cache_root>/symbols/<build-id>.json``),
:mod:`.translate` (direct map, kernel image map, 4/5-level walk of ``init_top_pgt``),
:mod:`.helpers.percpu` (``per_cpu_ptr``, ``percpu_symbol``), :mod:`.helpers.ext`
(``scx_sample(prog)`` -> ``{"scx_state": "SCX_ENABLED"|..., "scx_ops": name|None}``),
:mod:`.helpers.pid` (``for_each_task``), :mod:`.helpers.sched` (``task_sample(prog, task)``
-> ``{"pid", "comm", "state", "cpu", "sum_exec_runtime"}``), :mod:`.helpers.list`
(bounded ``list_for_each_entry``), :mod:`.helpers.idr` / :mod:`.helpers.xarray`
(``idr_for_each(prog, prog.symbol("prog_idr"))``), :mod:`.helpers.bpf_prog`
(``bpf_prog_list``), :mod:`.helpers.bpf_map` (``bpf_map_list``, ``find_map``,
``bpf_map_read``, ``bpf_map_write``; values decoded by :mod:`.btf_value` with the map's BTF
from :mod:`.helpers.btf_object`, arena globals by :mod:`.helpers.bpf_arena`), and ``Program.read``,
``read_u32``, ``read_u64``, ``symbol``, ``member_offset``, ``possible_cpus``,
``online_cpus``. ``memory.DumpMemory(path)`` and ``memory.ReaderMemory(read)`` run the same
helpers over a dump file or a test fake.
"""
