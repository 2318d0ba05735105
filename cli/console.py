"""Output streams, error handling and log display shared by every command."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from bindsearch.errors import BindsearchError, first_line

try:  # what typer raises for a command line it cannot parse (recent typer carries its own click)
    from typer import TyperException as CommandLineError
except ImportError:  # older typer, on click itself
    from click import ClickException as CommandLineError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILED_FILES = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a Unix tool stopped by SIGPIPE


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; returns the Exit to raise."""
    err.print(f"[bold red]error:[/] {_escape(message)}")
    return typer.Exit(code)


def fail_on_usage(exc: CommandLineError) -> typer.Exit:
    """A usage error found while parsing the command line (an unknown option, a missing argument) as one
    ``error:`` line naming the command, instead of typer's usage block. Returns the Exit to raise.

    ``bindsearch`` alone is no error: its help is shown, as asked for."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()  # type: ignore[attr-defined]
        return typer.Exit(exc.exit_code)
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "bindsearch"
    message = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
    return fail(f"{command}: {message} (see {command} --help)", exc.exit_code)


def quiet_broken_pipe() -> typer.Exit:
    """The reader of stdout went away (``query ... | head``): stop without a word, as Unix tools do.

    stdout is pointed at /dev/null first, so that the interpreter's own flush at exit finds no
    closed pipe to complain about. Returns the Exit to raise."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return typer.Exit(EXIT_BROKEN_PIPE)


def handles_errors(command: F) -> F:
    """Turn every exception a command lets out into one line on stderr and an exit status."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BindsearchError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            raise quiet_broken_pipe() from None
        except Exception as exc:
            if os.environ.get("BINDSEARCH_DEBUG"):
                raise
            first = first_line(exc) if str(exc).strip() else ""
            raise fail(
                f"unexpected {type(exc).__name__}{': ' + first if first else ''} (set BINDSEARCH_DEBUG=1 to see where)",
                1,
            ) from None

    return wrapper  # type: ignore[return-value]


class _StderrHandler(logging.Handler):
    """bindsearch's log warnings (random weights, rebuilt indexes) as one yellow line each, each once
    per command: the main process and each worker may say the same (each builds its own model)."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: set[tuple[int, str]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if (record.levelno, message) in self.shown:
            return
        self.shown.add((record.levelno, message))
        level = "warning" if record.levelno >= logging.WARNING else "note"
        # Printed through the console, a line goes above a live progress display rather than through it.
        err.print(f"[yellow]{level}:[/] {_escape(message)}")


def setup_logging() -> None:
    """Called at the start of every command: what an earlier command (in the same process) said is said again."""
    logger = logging.getLogger("bindsearch")
    handlers = [h for h in logger.handlers if isinstance(h, _StderrHandler)]
    if not handlers:
        logger.addHandler(_StderrHandler())
    for handler in handlers:
        handler.shown.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
