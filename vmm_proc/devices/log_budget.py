"""A log budget: guest-triggered messages are logged a bounded number of times.

A hostile guest can trigger a warning path in a loop; the counters in each device's metrics
keep the full tally, the log keeps only the first few occurrences.
"""

from __future__ import annotations

import threading

__all__ = ("LogBudget",)


class LogBudget:
    """Allows ``limit`` messages, then one "suppressing" notice, then nothing.

    :param limit: messages allowed before going quiet.
    """

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether the caller may log now."""
        with self._lock:
            self._used += 1
            return self._used <= self.limit

    @property
    def exhausted_now(self) -> bool:
        """True exactly when the last allowed message was just spent (say "suppressing")."""
        return self._used == self.limit
