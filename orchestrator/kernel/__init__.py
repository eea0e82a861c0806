"""Kernels for schedlab guests: fetch the default one, resolve ``--kernel``, read images.

API summary:

- :func:`orchestrator.kernel.resolve.resolve_kernel(spec, fetch_if_missing=True)
  <orchestrator.kernel.resolve.resolve_kernel>` -> :class:`KernelArtifacts`
  (``version, root, vmlinuz, vmlinux, config, modules_dir, system_map, meta``;
  ``has_sched_ext``, ``has_btf``, ``hz``, ``enabled(name)``); ``list_cached()``;
  errors are :class:`KernelError` with a one-line message.
- :func:`orchestrator.kernel.fetch.fetch_default(progress=None, refresh=False)`: Debian sid's
  cloud kernel into ``kernels_dir()/<version>/``.
- :class:`orchestrator.private_apt.PrivateApt(suite, root=None)` (shared with the testbed):
  ``update()``, ``show(pkg)``, ``resolve_depends(pkg)``, ``newest(pattern, prefix)``,
  ``download(pkg, dest)``.
- :mod:`orchestrator.kernel.image`: ``parse_bzimage(data)``, ``extract_vmlinux(data)``.
- :class:`orchestrator.kernel.modules.ModuleIndex(modules_dir)`: ``load_order(names)``,
  ``read_plain(rel)``.
- :data:`orchestrator.kernel.cli.kernel_group`: the ``schedlab kernel`` click group.
"""
