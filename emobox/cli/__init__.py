"""The ``emobox`` command line (Typer). Commands are thin: parse, build options, call the library.

User errors (:class:`emobox.EmoboxError`) print one ``error: ...`` line on stderr and exit with
the error's :class:`emobox.ExitCode`; only bugs print a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings

# Idle OpenMP threads sleep instead of spinning (set before torch loads its OpenMP runtime; a
# value the user exported wins). On a shared or oversubscribed machine spinning threads take the
# CPU from the thread doing the work; training runs were measured several times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from typing import Sequence

import click
import typer
from rich.markup import escape

from ..errors import EmoboxError, ExitCode
from .base import app, console, err_console  # noqa: F401 (console: part of emobox.cli)


def _exception_types(name: str) -> tuple[type, ...]:
    """``name`` from click and from the copy of click that recent Typer versions vendor."""
    types = [getattr(click.exceptions, name)]
    try:
        from typer._click import exceptions as vendored
    except ImportError:
        vendored = None
    if vendored is not None and hasattr(vendored, name):
        types.append(getattr(vendored, name))
    if name == "Abort":
        types.append(typer.Abort)
    return tuple(dict.fromkeys(types))


CLICK_ERRORS = _exception_types("ClickException")
ABORTS = _exception_types("Abort")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False,
                      soft_wrap=True)


INTERRUPTED_MESSAGE = ("interrupted; finished work is kept: run the same command again to "
                       "resume")


def _interrupted() -> int:
    err_console.print(INTERRUPTED_MESSAGE, highlight=False, soft_wrap=True)
    # CPython ends `python -m emobox` by SIGINT instead of with this exit code when the
    # interrupt landed in code run from a string (exec/eval: a dataclass's generated __init__,
    # ...), even though it was handled here; evaluating a string afterwards clears that record
    exec("None", {})
    return int(ExitCode.INTERRUPTED)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emobox`` console script; returns the exit code."""
    warnings.showwarning = _show_warning
    interrupted: list[bool] = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.default_int_handler:  # note Ctrl-C: Typer turns it into exit 130

            def on_sigint(signum, frame):  # noqa: ANN001
                interrupted.append(True)
                signal.default_int_handler(signum, frame)

            signal.signal(signal.SIGINT, on_sigint)
        else:
            previous = None
    try:
        rv = _main(argv)
    except KeyboardInterrupt:
        return _interrupted()
    except BaseException:
        if interrupted:  # what Ctrl-C cut short (e.g. a module half imported) failed after it
            return _interrupted()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if rv == -ExitCode.INTERRUPTED:  # aborted, and said so
        return int(ExitCode.INTERRUPTED)
    if interrupted or rv == ExitCode.INTERRUPTED:
        return _interrupted()
    return rv


def _main(argv: Sequence[str] | None) -> int:
    try:
        rv = app(args=list(argv) if argv is not None else None, standalone_mode=False,
                 prog_name="emobox")
    except CLICK_ERRORS as exc:
        exc.show(file=sys.stderr)
        return exc.exit_code
    except ABORTS:  # a prompt answered with end of input
        err_console.print("aborted")
        return -int(ExitCode.INTERRUPTED)
    except EmoboxError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        if os.environ.get("EMOBOX_TRACEBACK"):  # where it was raised, for a bug report
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        return int(exc.exit_code)
    except OSError as exc:
        # a file or folder emobox must read or write is not usable (a file where a folder
        # should be, permissions, a full disk): one line naming it, unless EMOBOX_TRACEBACK=1
        if exc.errno is None or os.environ.get("EMOBOX_TRACEBACK"):
            raise  # not the operating system's refusal (e.g. io.UnsupportedOperation): a bug
        err_console.print(f"[red]error:[/red] {escape(os_error_message(exc))}", highlight=False,
                          soft_wrap=True)
        return int(ExitCode.FILESYSTEM)
    return int(rv or 0) if isinstance(rv, int) else 0


def os_error_message(exc: OSError) -> str:
    """``PATH: reason`` for an error of the operating system, with what to do where it helps
    (without a path where the operating system gave none)."""
    import errno

    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else type(exc).__name__)
    if exc.filename is not None:
        where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
        msg = f"{where}: {reason}"
    else:
        msg = f"{reason} (the operating system did not say which file)"
    permissions = ("emobox may not read or write here (check permissions, EMOBOX_HOME and "
                   "--out)")
    full = ("the disk is full: free space, or set EMOBOX_HOME to another disk; finished work "
            "is kept, run the same command to resume")
    hint = {errno.ENOSPC: full,
            errno.EDQUOT: "the disk quota is exceeded: free space or write elsewhere; finished "
                          "work is kept, run the same command to resume",
            errno.EFBIG: "the file is larger than this file system or a limit allows (see "
                         "`ulimit -f`); finished work is kept",
            errno.ENOTDIR: "a file stands where emobox needs a folder",
            errno.EEXIST: "a file stands where emobox needs a folder",
            errno.EISDIR: "a folder stands where emobox needs a file",
            errno.EACCES: permissions,
            errno.EPERM: permissions,
            errno.EROFS: "the file system is read-only: set EMOBOX_HOME or --out elsewhere",
            errno.EIO: "the disk or network file system failed to read or write; check it, "
                       "then run the same command again",
            errno.ENAMETOOLONG: "the name is too long for this file system",
            errno.ELOOP: "too many symbolic links (a loop?)",
            errno.EMFILE: "too many open files (raise `ulimit -n`)",
            errno.ENFILE: "too many open files on this machine",
            errno.ENOMEM: "out of memory",
            errno.ETXTBSY: "the file is in use",
            errno.ESTALE: "a stale network file handle: remount, then run the same command "
                          "again",
            }.get(exc.errno or -1)
    return f"{msg} ({hint})" if hint else msg


def entrypoint() -> None:
    try:
        code = main()
    except KeyboardInterrupt:  # a second Ctrl-C while the first one was handled
        code = _interrupted()
    sys.exit(code)


from . import (bench_cmd, corpora_cmd, cross_cmd, doctor_cmd, extract_cmd, plugins_cmd,  # noqa: E402,F401
               report_cmd, run_cmd, submit_cmd, upstreams_cmd)
