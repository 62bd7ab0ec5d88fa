"""mpremote against the virtual board's console as against a board on a USB cable: the socket
bridge (`vboard.py boot --repl`) and the pty bridge (`vboard.py repl`), with resets.

mpremote runs as a subprocess with a timeout; its interactive `repl` runs on a pty this test holds
the other end of, read with select and a deadline.
"""

import contextlib
import json
import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VBOARD = ROOT / "tools" / "vboard.py"
MPREMOTE = str(Path(sys.executable).with_name("mpremote"))
TIMEOUT_S = 60
RETRY_S = 5  # a Ctrl-C without an answer this long is sent again

# The firmware: says it is idle and then runs for a minute, as an application's main loop does;
# mpremote's Ctrl-C interrupts it to reach the REPL, as on a board.
MAIN = """\
import json
import time

print(json.dumps({"event": "idle"}))
time.sleep(60)
"""


@pytest.fixture
def board(tmp_path):
    return make_board(tmp_path, MAIN)


def make_board(tmp_path, main):
    (tmp_path / "main.py").write_text(main)
    (tmp_path / "cfg.json").write_text('{"cloud": "onenet"}')
    target = tmp_path / "board"
    cmd = [
        sys.executable,
        str(VBOARD),
        "create",
        str(target),
        "--config",
        str(tmp_path / "cfg.json"),
    ]
    cmd += ["--version", "1.0.0", "--put", "%s:/main.py" % (tmp_path / "main.py")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    return target


class Events:
    """vboard's stdout, one JSON event per line, read by a thread into a queue."""

    def __init__(self, proc):
        self.queue = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.queue.put(json.loads(line))
        self.queue.put(None)

    def wait(self, **fields):
        """The next event whose fields match; fails after TIMEOUT_S or when vboard ends."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                event = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no event %r; seen %r" % (fields, self.seen)) from None
            assert event is not None, "vboard ended; seen %r" % self.seen
            self.seen.append(event)
            if all(event.get(k) == v for k, v in fields.items()):
                return event


@contextlib.contextmanager
def running(*args):
    """vboard.py ARGS... running -> (process, events), its first event already read."""
    proc = subprocess.Popen(
        [sys.executable, str(VBOARD), *map(str, args), "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        events = Events(proc)
        yield proc, events
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT_S)


def mpremote(port, *command):
    done = subprocess.run(
        [MPREMOTE, "connect", port, *command], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def resets_and_reconnects(port, events):
    """machine.reset() and `mpremote reset` reboot the board on the same flash; each mpremote
    returns, and the next one finds the board again."""
    events.wait(event="idle", boot=1)
    assert mpremote(port, "exec", "import machine; print(machine.reset_cause())") == ["1"]
    mpremote(port, "exec", "open('/kept.txt', 'w').write('on flash')")
    assert mpremote(port, "exec", "import machine; machine.reset()") == []
    events.wait(event="reset", boot=1, cause="soft")
    events.wait(event="boot", boot=2, reset_cause="soft")
    # SOFT_RESET (5) is what an ESP32 reports after machine.reset()
    lines = mpremote(port, "exec", "import machine; print(machine.reset_cause())")
    assert lines == ["5"]
    assert mpremote(port, "exec", "print(open('/kept.txt').read())") == ["on flash"]
    mpremote(port, "reset")
    events.wait(event="reset", boot=2, cause="soft")
    events.wait(event="boot", boot=3)
    assert mpremote(port, "exec", "print(6 * 7)") == ["42"]


def test_machine_reset_and_mpremote_reset_through_the_socket_bridge(board):
    with running("boot", board, "--repl", "0") as (proc, events):
        url = events.wait(event="repl")["url"]
        resets_and_reconnects(url, events)
        assert proc.poll() is None


def test_machine_reset_and_mpremote_reset_through_the_pty_bridge(board):
    with running("repl", board) as (proc, events):
        device = events.wait(event="repl")["device"]
        assert device.startswith("/dev/pts/")
        resets_and_reconnects(device, events)
        lines = mpremote(device, "fs", "ls", ":")
        assert any(line.split() == ["8", "kept.txt"] for line in lines), lines
        assert proc.poll() is None


class Terminal:
    """A program on a pty of ours, as in a terminal window; reads wait until a deadline."""

    def __init__(self, cmd):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)
        self.output = b""

    def expect(self, text):
        """Read until text appears after what was expected before; returns the bytes up to it."""
        deadline = time.monotonic() + TIMEOUT_S
        while text not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, "no %r in %r" % (text, self.output[-400:])
            if select.select([self.master], [], [], left)[0]:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: the program closed the terminal
                    data = b""
                assert data, "the program ended; no %r in %r" % (text, self.output[-400:])
                self.output += data
        before, self.output = self.output.split(text, 1)
        return before

    def send(self, data):
        os.write(self.master, data)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT_S)
        os.close(self.master)


def test_mpremote_repl_through_the_pty_bridge_survives_a_reset(board):
    with running("repl", board) as (proc, events):
        device = events.wait(event="repl")["device"]
        events.wait(event="idle", boot=1)
        term = Terminal([MPREMOTE, "connect", device, "repl"])
        try:
            term.expect(b"Connected to MicroPython at %s" % device.encode())
            term.send(b"\x03")  # interrupt main.py: the friendly REPL
            term.expect(b">>> ")
            term.send(b"print(6 * 7)\r")
            term.expect(b"print(6 * 7)\r\n")  # the echo
            assert term.expect(b">>> ").strip() == b"42"
            term.send(b"import machine; machine.reset()\r")
            events.wait(event="boot", boot=2, reset_cause="soft")
            term.expect(b'{"event": "idle"}')  # the new boot's main.py, on the same console
            term.send(b"\x03")
            term.expect(b"KeyboardInterrupt")
            term.expect(b">>> ")
            term.send(b"import machine; machine.reset_cause()\r")
            term.expect(b"reset_cause()\r\n")
            assert term.expect(b">>> ").strip() == b"5"
            term.send(b"\x1d")  # Ctrl-]: leave mpremote
            assert term.proc.wait(timeout=TIMEOUT_S) == 0
        finally:
            term.close()
        assert proc.poll() is None


def test_the_pty_bridge_keeps_a_board_running_that_nobody_reads_and_loses_nothing_when_read(
    tmp_path,
):
    # about 200 KB of output before the idle event, with no program on the pty: the bridge drops
    # what nobody reads, as a UART does, instead of stopping the firmware on a full pipe
    flood = 'for i in range(3000):\n    print("flood %d" % i, "x" * 60)\n'
    board = make_board(tmp_path, flood + MAIN)
    with running("repl", board) as (proc, events):
        device = events.wait(event="repl")["device"]
        events.wait(event="idle", boot=1)
        # with a reader, every byte arrives in order (more than the bridge buffers at once)
        lines = mpremote(device, "exec", "for i in range(20000):\n    print(i)")
        assert lines == [str(i) for i in range(20000)]
        assert proc.poll() is None


def test_a_ctrl_c_sent_while_the_board_starts_waits_for_its_repl(board):
    # a client that connects at once: its Ctrl-C reaches the firmware once it can take it (it
    # interrupts boot.py or main.py), never the interpreter starting up, which it would kill
    with running("boot", board, "--repl", "0") as (proc, events):
        port = events.wait(event="repl")["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as client:
            client.sendall(b"\r\x03\r\x01")  # what mpremote sends first: interrupt, raw REPL
            # On a loaded machine the Ctrl-C may land in boot.py, after which main.py runs as on a
            # board: the prompt does not come, and a second Ctrl-C (as a user would press) gets
            # it. What must never happen is the board dying: checked below.
            client.settimeout(RETRY_S)
            seen = b""
            deadline = time.monotonic() + TIMEOUT_S
            while not seen.endswith(b"raw REPL; CTRL-B to exit\r\n>"):
                assert time.monotonic() < deadline, "no raw REPL after %r" % seen
                try:
                    data = client.recv(4096)
                except TimeoutError:
                    client.sendall(b"\r\x03\r\x01")
                    continue
                assert data, "the bridge closed the connection after %r" % seen
                seen += data
            client.settimeout(TIMEOUT_S)
            client.sendall(b"print(6 * 7)\x04")
            answer = b""
            while not answer.endswith(b"\x04>"):
                data = client.recv(4096)
                assert data, "the bridge closed the connection after %r" % answer
                answer += data
            assert answer == b"OK42\n\x04\x04>"  # output, end, no error, end, prompt
        events.wait(event="boot", boot=1)
        assert not any(e["event"] in ("error", "crash") for e in events.seen)
        assert proc.poll() is None
