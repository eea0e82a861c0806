"""``schedlab completions bash|zsh|fish``: click's shell completion script for schedlab."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

__all__ = ("COMPLETE_VAR", "SHELLS", "completions_cmd")

SHELLS = ("bash", "zsh", "fish")
#: The environment variable the scripts set when they ask schedlab for completions.
COMPLETE_VAR = "_SCHEDLAB_COMPLETE"


@click.command("completions", short_help="Print a shell completion script.")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completions_cmd(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (commands, options, choices, kernels).

    \b
    bash:  eval "$(schedlab completions bash)"     (e.g. in ~/.bashrc)
    zsh:   eval "$(schedlab completions zsh)"      (e.g. in ~/.zshrc)
    fish:  schedlab completions fish > ~/.config/fish/completions/schedlab.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # every name in SHELLS is one of click's
    root = ctx.find_root().command
    click.echo(cls(root, {}, "schedlab", COMPLETE_VAR).source())
