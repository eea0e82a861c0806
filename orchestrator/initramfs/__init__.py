"""Initramfs images for schedlab guests.

API summary:

- :class:`orchestrator.initramfs.cpio.CpioArchive`: deterministic newc writer:
  ``add_dir(path, mode)``, ``add_dirs(path)``, ``add_file(path, data, mode)``,
  ``add_symlink(path, target)``, ``add_char_device(path, major, minor)``,
  ``to_bytes()``, ``write(fileobj)``.
"""
