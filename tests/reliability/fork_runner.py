"""A warm process that runs ``emobox`` commands in forked children, for the kill tests.

A fresh ``emobox run`` spends most of its first second importing torch and friends, so kills at
random times would mostly land in imports. This script imports everything once (by running one
warm-up command), then forks one child per request; each child is a complete ``emobox`` command
(``emobox.cli.main``) that the test can SIGKILL at any point of its real work.

Protocol, one line each way: the test writes a JSON list of CLI arguments; the script answers
``pid N`` when the child is started, then ``exit STATUS SECONDS`` when it ended (STATUS is the
exit code, or minus the signal that ended it). The first line written is ``ready`` after the
warm-up. Every child's stdout and stderr go to ``$KILL_TEST_LOG``. Torch runs on one thread in
every child, which keeps a fork safe and the results comparable between children.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _child(args: list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 1
    try:
        from emobox.cli import main

        code = main(args)
    except BaseException as exc:  # noqa: BLE001  (reported through the log and the status)
        import traceback

        traceback.print_exception(exc)
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code or 0))


def _status(raw: int) -> int:
    if os.WIFSIGNALED(raw):
        return -os.WTERMSIG(raw)
    return os.WEXITSTATUS(raw)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    log = os.environ["KILL_TEST_LOG"]
    warm = json.loads(sys.argv[1])
    from emobox.cli import main as cli

    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        code = cli(warm)
    except BaseException as exc:  # noqa: BLE001
        import traceback

        traceback.print_exception(exc)
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
    if code:
        print(f"exit {code} 0", flush=True)
        return
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        args = json.loads(line)
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _child(args, log)
        print(f"pid {pid}", flush=True)
        status = _status(os.waitpid(pid, 0)[1])
        print(f"exit {status} {time.perf_counter() - t0:.4f}", flush=True)


if __name__ == "__main__":
    main()
