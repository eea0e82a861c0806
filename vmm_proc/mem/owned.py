"""Context-manager boilerplate for objects that own an OS resource released by ``close()``.

It lives in ``vmm_proc.mem`` because that is the lowest layer needing it: ``vmm_proc.kvm``
already depends on ``vmm_proc.mem``, never the other way round.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ("Finalized", "Owned")


class Owned(ABC):
    """``with owner: ...`` closes the owner on leaving the block; ``close()`` must be idempotent."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object owns; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Finalized(Owned):
    """An ``Owned`` that also closes itself when garbage-collected unclosed."""

    def __del__(self) -> None:
        # Last resort for owners nobody closed; never raise from a finalizer.
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
