"""How a command's ``--help`` shows it: arguments by name alone, and its whole first sentence in the list.

typer writes an argument's Python type beside it (``PATH <list[Path]>``) and cuts a
command's summary to 45 characters in ``bindsearch --help``; these say it in words.
"""

from __future__ import annotations

from typing import Any

import typer.core


class Command(typer.core.TyperCommand):
    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces += param.get_usage_pieces(ctx)
        return pieces

    def get_short_help_str(self, limit: int = 45) -> str:
        """The first sentence of the help, whole."""
        first = (self.help or "").strip().split("\n\n")[0]
        return " ".join(first.split())


def _argument_name(param: Any) -> str:
    """``PATH...`` for an argument that takes several values, else ``PATH``."""
    name = param.metavar or param.name.upper()
    return f"{name}..." if param.nargs != 1 else name
