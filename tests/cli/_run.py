"""Running the sharedctx command for real: in a subprocess, to a pipe or on a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from typing import NamedTuple

# Plain output at a known width when piped; a terminal gets its own size instead.
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
_TERMINAL_ENV = {
    **{name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES")},
    "TERM": "xterm-256color",
}
# What a terminal acts on, rather than shows: CSI sequences (colours, cursor moves).
_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Ctrl-C as on a terminal, whoever started the tests: a shell without job control
# starts its background jobs with SIGINT ignored, and a process keeps an ignored signal
# ignored across exec (Python then installs no KeyboardInterrupt). Caught here, it is
# back to its default in the program exec'd next.
_SIGINT_AS_ON_A_TERMINAL = "signal.signal(signal.SIGINT, signal.default_int_handler); "
_EXEC_SHAREDCTX = "os.execv(sys.executable, [sys.executable, '-m', 'sharedctx', *sys.argv[1:]])"
SHAREDCTX = [
    sys.executable,
    "-c",
    f"import os, signal, sys; {_SIGINT_AS_ON_A_TERMINAL}{_EXEC_SHAREDCTX}",
]
"""``python -m sharedctx``, that Ctrl-C (SIGINT) interrupts: give it the arguments."""
# Make stdin the new session's controlling terminal, then become `python -m sharedctx`.
_ON_CONTROLLING_TERMINAL = (
    "import fcntl, os, signal, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    f"{_SIGINT_AS_ON_A_TERMINAL}{_EXEC_SHAREDCTX}"
)


def sharedctx(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m sharedctx ARGS``, its output piped."""
    return subprocess.run(
        [*SHAREDCTX, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        check=False,
    )


def start_watch(*args: str) -> subprocess.Popen[str]:
    """``sharedctx watch ARGS`` with its output piped, once it says (on stderr, as
    stdout is for the events only) that it is watching."""
    process = subprocess.Popen(
        [*SHAREDCTX, "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert process.stderr is not None
    assert "watching" in process.stderr.readline()
    return process


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line on stderr of a command that failed as it should (status 2)."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


class Terminal(NamedTuple):
    status: int
    output: str
    """Everything written to the terminal, decoded."""

    def lines(self) -> list[str]:
        """Every line as drawn (each redraw too), without the terminal's CSI sequences."""
        text = _CSI.sub("", self.output)
        return [part for line in text.split("\n") for part in line.split("\r")]


def on_terminal(
    *args: str,
    columns: int = 80,
    env: dict[str, str] | None = None,
    answer: Callable[[str], bytes | None] | None = None,
    timeout: float = 60,
) -> Terminal:
    """Run ``sharedctx ARGS`` on a pseudo-terminal of ``columns`` columns, until it exits.

    The terminal is the command's controlling terminal, so typing Ctrl-C (``\x03``)
    interrupts it and Ctrl-D (``\x04``) ends its input, as for a person.
    ``answer(output_so_far)`` is called as output arrives, and may return bytes to type.
    """
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-c", _ON_CONTROLLING_TERMINAL, *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env or _TERMINAL_ENV,
        close_fds=True,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    chunk = b""
                if not chunk and process.poll() is not None:
                    break
                seen += chunk
                typed = answer(seen.decode(errors="replace")) if answer else None
                if typed:
                    os.write(controller, typed)
            elif process.poll() is not None:
                break
        return Terminal(process.wait(10), seen.decode(errors="replace"))
    finally:
        process.kill()
        process.wait()
        os.close(controller)


def replies(*prompts: tuple[str, bytes]) -> Callable[[str], bytes | None]:
    """An ``answer`` for :func:`on_terminal`: type each reply once its prompt is shown,
    in order."""
    pending = list(prompts)

    def answer(output: str) -> bytes | None:
        if pending and output.count(pending[0][0]) > 0:
            return pending.pop(0)[1]
        return None

    return answer
