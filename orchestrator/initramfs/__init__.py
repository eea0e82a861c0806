"""Initramfs images for schedlab guests.

API summary:

- :func:`orchestrator.initramfs.builder.build_initramfs(kernel, *, modules=[], extra_files={},
  guest_src=None, strip=True) -> Path`: a cached, uncompressed newc image with the guest
  Python runtime, the guest package, the named kernel modules and ``/init``; the image
  contract (sentinel, module load order, layout) is in the builder's module docstring.
- :class:`orchestrator.initramfs.cpio.CpioArchive`: deterministic newc writer:
  ``add_dir(path, mode)``, ``add_dirs(path)``, ``add_file(path, data, mode)``,
  ``add_symlink(path, target)``, ``add_char_device(path, major, minor)``,
  ``to_bytes()``, ``write(fileobj)``.
- :func:`orchestrator.initramfs.pyruntime.collect_runtime(guest_src, strip=True)`: the
  interpreter, its libraries and the stdlib subset as ``{guest path: (bytes, mode)}``.
- :func:`orchestrator.initramfs.elfdeps.resolve_libraries(paths)`: ``DT_NEEDED`` closure.
"""
