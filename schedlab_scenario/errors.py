"""The one error a scenario raises when it is built or resolved."""

from __future__ import annotations

__all__ = ("ScenarioError",)


class ScenarioError(ValueError):
    """A scenario that cannot run as written.

    :param field: where, as a path from the object being built (``workers``,
        ``steps[1].ops[0].cgroup``, ``backdrop.cgroups[0].cpuset``).
    :param msg: what is wrong and, where it helps, what to write instead.
    """

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(f"{field}: {msg}" if field else msg)
        self.field = field
        self.msg = msg

    def under(self, prefix: str) -> ScenarioError:
        """The same error seen from the object that holds this one at ``prefix``."""
        field = f"{prefix}.{self.field}" if self.field and prefix else (prefix or self.field)
        return ScenarioError(field, self.msg)
