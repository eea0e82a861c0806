"""The testbed: run a command on this machine inside a QEMU TCG VM (L1) with a real /dev/kvm.

TCG emulates AMD SVM with nested paging, so L1's kvm_amd gives hardware KVM semantics even
where the host's own /dev/kvm is a software one. The host root is visible read-only, the
project tree (the cwd's git top, or ``share``) and the schedlab cache are writable over the
same paths, /tmp and /dev/shm are private tmpfs, CMD's output streams back live.

API summary:

- :func:`orchestrator.testbed.run.run_in_testbed` ``(cmd, *, timeout, mem_mib=4096, cpus=1,
  share=None, env=None, stdout=None, stderr=None, keep_log=False, boot_attempts=3,
  tcg_threads=None) -> TestbedResult(exit_code, duration_s, l1_boot_s, l1_uptime_s,
  console_log, attempts)``; raises :class:`~orchestrator.testbed.run.TestbedError`
  (``.timed_out``, ``.console_log``) when the testbed itself fails.
- :data:`orchestrator.testbed.cli.testbed`: the click command ``schedlab testbed -- CMD``
  (also ``python -m orchestrator.testbed -- CMD``); exit status is CMD's, 2 on a testbed failure.
- :func:`orchestrator.testbed.l1kernel.ensure_l1_kernel`: fetch/cache the L1 kernel.

Environment: ``SCHEDLAB_TESTBED_QEMU`` (another QEMU binary), ``SCHEDLAB_TESTBED_TCG_THREADS``
(``multi`` default, or ``single``: slower with parallel work, immune to MTTCG code-patching races).
"""
