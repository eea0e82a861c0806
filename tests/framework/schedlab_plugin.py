"""Loading schedlab's pytest plugin in a nested pytest run.

Installed, the plugin comes by its ``pytest11`` entry point; a virtualenv installed before
that entry point existed (the launcher reinstalls when pyproject.toml changes) needs
``-p schedlab_test.plugin``, which must not be given twice.
"""

from __future__ import annotations

from importlib.metadata import entry_points

__all__ = ("plugin_args",)


def plugin_args() -> list[str]:
    """``[]`` when the entry point is installed, else the ``-p`` that loads the plugin."""
    installed = any(ep.value == "schedlab_test.plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "schedlab_test.plugin"]
