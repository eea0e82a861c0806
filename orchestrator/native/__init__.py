"""The guest's native work loops (``guest/native/work.c``), built on the host with cffi.

:mod:`orchestrator.native.build` compiles the C extension ``_schedlab_work`` once per source
hash for the host's interpreter, which is also the guest's (the initramfs carries the host's
Python); :func:`orchestrator.native.build.image_files` names what the guest image needs.
"""
