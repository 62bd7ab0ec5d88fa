"""A virtual board serving its console for mpremote (`vboard.py boot --repl 0`), for the tests
that drive a board as a user does (test_vboard.py, test_deploy.py)."""

import contextlib
import json
import selectors
import subprocess
import sys
from pathlib import Path

VBOARD = Path(__file__).resolve().parent.parent / "tools" / "vboard.py"


@contextlib.contextmanager
def serving(board, timeout_s=60, wait_s=60):
    """`vboard.py boot --repl 0` of board (stopping after timeout_s), once its firmware is idle
    -> (process, the repl event). wait_s bounds each wait for the board's next line."""
    proc = subprocess.Popen(
        [sys.executable, str(VBOARD), "boot", str(board), "--repl", "0", "--timeout",
         str(timeout_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(wait_s), "no repl event from vboard"
        first = json.loads(proc.stdout.readline())
        # connect once the firmware is idle: an early Ctrl-C would interrupt its start-up
        while True:
            assert sel.select(wait_s), "the board never went idle"
            line = proc.stdout.readline()
            assert line, "vboard ended before the board was idle"
            if line.startswith("{") and json.loads(line).get("event") == "idle":
                break
        yield proc, first
    finally:
        proc.terminate()
        proc.wait(timeout=wait_s)
