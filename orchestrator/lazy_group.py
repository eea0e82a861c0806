"""A click group whose subcommands are imported only when used (or listed by ``--help``).

``schedlab run`` then does not pay for the kernel, testbed, attach, bench and scheduler
command modules (and what they import) at every start.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ("LazyGroup",)


class LazyGroup(click.Group):
    """:param lazy: command name -> ``"module:attribute"`` of its click command."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self._lazy.pop(cmd_name, None)
        if target is not None:
            module, _, attr = target.partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)
