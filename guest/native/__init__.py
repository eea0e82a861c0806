"""The native work loops (``_schedlab_work``, built from ``work.c`` by the host).

The image carries the extension beside the guest package (``/usr/lib/schedlab``, on
``sys.path``); on the host, :mod:`orchestrator.native.build` puts it in the cache and a caller
adds that directory to ``sys.path``. Importing this package costs nothing: :func:`load`
imports the extension on first use (the worker parent does it once, before forking workers).

>>> ffi, lib = load()
>>> lib.sl_now_ns() > 0
True
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = ("MODULE", "NativeUnavailable", "load")

MODULE = "_schedlab_work"
_loaded: tuple[Any, Any] | None = None


class NativeUnavailable(ImportError):
    """The extension is not in this image (or not built on this host)."""


def load() -> tuple[Any, Any]:
    """``(ffi, lib)`` of the extension, imported once.

    :raises NativeUnavailable: it cannot be imported (the message says why).
    """
    global _loaded
    if _loaded is None:
        try:
            mod = __import__(MODULE)
        except ImportError as e:
            raise NativeUnavailable(
                f"native work loops ({MODULE}) unavailable: {e}; the image builder packs them "
                "(orchestrator.native.build)"
            ) from None
        _loaded = (mod.ffi, mod.lib)
    return _loaded
