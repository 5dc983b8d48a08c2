"""The Click group of sub-commands that take an app's name straight after the group's own name."""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup


class DefaultCommandGroup(TyperGroup):
    """`shipyard config todo` means `shipyard config show todo`, `shipyard apps todo` means `shipyard apps info
    todo`: an unknown word is the app name."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        default = next((name for name in ("show", "info") if name in self.commands), None)
        if default and args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [default, *args]
        return super().parse_args(ctx, args)
