"""The testbed: run a command on this machine inside a QEMU TCG VM (L1) with a real /dev/kvm.

TCG emulates AMD SVM with nested paging, so L1's kvm_amd gives hardware KVM semantics even
where the host's own /dev/kvm is a software one. The host root is visible read-only, the
project tree and the schedlab cache are writable, CMD's output streams back live.

API summary:

- :func:`orchestrator.testbed.run.run_in_testbed` ``(cmd, *, timeout, mem_mib=4096, cpus=2,
  share=None, env=None, stdout=None, stderr=None, keep_log=False) -> TestbedResult``;
  raises :class:`~orchestrator.testbed.run.TestbedError` on testbed failures.
- :data:`orchestrator.testbed.cli.testbed`: the click command ``schedlab testbed -- CMD``.
- :func:`orchestrator.testbed.l1kernel.ensure_l1_kernel`: fetch/cache the L1 kernel.
"""
