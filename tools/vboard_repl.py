"""The virtual board's console as a serial port for mpremote: a TCP socket or a pseudo-terminal.

`vboard.py boot DIR --repl PORT` serves it on socket://127.0.0.1:PORT; `vboard.py repl DIR` on a
pty, /dev/pts/N. The board boots as with `boot` (bootloader, boot.py, main.py), then its REPL
serves the console (tools/vboard_rt/vboard_console.py). The bridge relays bytes between the
client and the firmware's stdin/stdout, turns the client's Ctrl-C into SIGINT (the firmware sees
KeyboardInterrupt, as from the UART), and when the firmware resets (machine.reset()) runs the
bootloader and boots again on the same flash with the client still connected, as a USB serial
port stays open across resets. What the client sends while the board boots is held until the
firmware's REPL can take it (a Ctrl-C then interrupts boot.py or main.py, not the start-up).

socket: mpremote's `exec`, `run`, `fs`, `mip`, `soft-reset` and `reset` work; its interactive
`repl` needs a file descriptor that pyserial's socket transport does not have, hence the pty. One
client at a time, the newest wins; while none is connected the console's lines become events on
stdout. The first event: {"event": "repl", "port": PORT, "url": "socket://127.0.0.1:PORT"}.

pty: every mpremote command, `repl` included (`mpremote connect /dev/pts/N repl`). The bridge
holds the pty's other end open, so a client may come and go. A pty cannot tell whether anyone
reads it: the firmware's output waits while the client reads slowly, and when nothing is read
for a second the unread bytes are dropped, as a UART's are with no cable. The firmware's JSON
event lines are also events on stdout. The first event: {"event": "repl", "device": "/dev/pts/N"}.

Both run until --timeout, --boots or vboard is interrupted.
"""

import json
import os
import pty
import selectors
import signal
import socket
import tempfile
import termios
import time
import tty

from vboard_boot import CAUSE_NAMES, PWRON_RESET, READY, SOFT_RESET, BootRun, build_runtime

STALL_S = 1.0  # a pty whose reader took nothing for this long has no reader: drop its bytes
TX_HIGH = 65536  # stop reading the firmware while this much output waits for the pty's reader


class SocketLink:
    """One TCP client at a time on 127.0.0.1:PORT."""

    def __init__(self, port):
        self.listener = socket.create_server(("127.0.0.1", port))
        self.client = None
        self.sel = None
        port = self.listener.getsockname()[1]
        self.event = {"event": "repl", "port": port, "url": "socket://127.0.0.1:%d" % port}

    def register(self, sel):
        self.sel = sel
        sel.register(self.listener, selectors.EVENT_READ, "accept")
        if self.client is not None:
            sel.register(self.client, selectors.EVENT_READ, "client")

    def handle(self, key, mask):
        """A ready file of this link -> bytes the client sent (b"" for none)."""
        if key.data == "accept":
            conn, _ = self.listener.accept()
            self._drop()  # the newest client wins
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.client = conn
            self.sel.register(conn, selectors.EVENT_READ, "client")
            return b""
        if key.fileobj is not self.client:  # one dropped earlier in this batch
            return b""
        try:
            data = self.client.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop()
        return data

    def send(self, data):
        """True when a client took data; False: nobody is connected."""
        if self.client is not None:
            try:
                self.client.sendall(data)
                return True
            except OSError:
                self._drop()
        return False

    def paused(self):
        return False

    def wait(self):
        return None

    def tick(self):
        pass

    def _drop(self):
        """Forget the client: out of the selector before its socket closes (fds are reused)."""
        if self.client is None:
            return
        try:
            self.sel.unregister(self.client)
        except (KeyError, ValueError):
            pass  # a previous boot's selector, already closed
        self.client.close()
        self.client = None

    def close(self):
        self._drop()
        self.listener.close()


class PtyLink:
    """A pseudo-terminal: the client opens /dev/pts/N, the bridge holds the master side."""

    def __init__(self):
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)  # no echo, no line editing, no CR/LF translation: a serial line
        os.set_blocking(self.master, False)
        self.tx = bytearray()  # output the client has not taken yet
        self.stalled = None  # monotonic time since which tx has made no progress
        self.sel = None
        self.event = {"event": "repl", "device": os.ttyname(self.slave)}

    def register(self, sel):
        self.sel = sel
        sel.register(self.master, self._events(), "client")

    def _events(self):
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if self.tx else 0)

    def handle(self, key, mask):
        data = b""
        if mask & selectors.EVENT_READ:
            try:
                data = os.read(self.master, 65536)
            except (BlockingIOError, InterruptedError):
                data = b""
        if mask & selectors.EVENT_WRITE:
            self._flush()
        return data

    def send(self, data):
        was = bool(self.tx)
        self.tx += data
        if not was:
            self._flush()
        return True

    def _flush(self):
        before = len(self.tx)
        try:
            while self.tx:
                del self.tx[: os.write(self.master, self.tx[:4096])]
        except (BlockingIOError, InterruptedError):
            pass
        if not self.tx:
            self.stalled = None
        elif self.stalled is None or len(self.tx) < before:
            self.stalled = time.monotonic()
        self.sel.modify(self.master, self._events(), "client")

    def paused(self):
        return len(self.tx) >= TX_HIGH

    def wait(self):
        """Seconds until the stall check is due (None: nothing waits)."""
        if self.stalled is None:
            return None
        return max(0.0, self.stalled + STALL_S - time.monotonic())

    def tick(self):
        if self.stalled is not None and time.monotonic() - self.stalled >= STALL_S:
            # nobody reads the pty: what it holds and what waits for it is lost, as on a UART
            termios.tcflush(self.slave, termios.TCIFLUSH)
            self.tx.clear()
            self.stalled = None
            self.sel.modify(self.master, self._events(), "client")

    def close(self):
        os.close(self.master)
        os.close(self.slave)


class ReplRun(BootRun):
    def __init__(self, board, args, emit, link):
        super().__init__(board, args, emit)
        self.link = link
        self.events_only = isinstance(link, PtyLink)  # a pty cannot say whether it is read

    def run(self):
        self.emit(self.link.event)
        try:
            with tempfile.TemporaryDirectory(prefix="vboard-rt-") as rt:
                build_runtime(rt, self.args.runtime)
                self.runtime = rt
                cause = PWRON_RESET
                for n in range(1, self.args.boots + 1):
                    slot = self.bootloader(n, cause)
                    cause = self.console(n, slot, cause)
                    if cause is None:
                        return 0
                    self.emit({"event": "reset", "boot": n, "cause": CAUSE_NAMES[cause]})
                self.emit({"event": "stop", "boot": self.args.boots, "reason": "boots"})
                return 0
        finally:
            self.link.close()

    def console(self, n, slot, cause):
        """Relay one boot's console. Returns the next reset cause, or None at the timeout."""
        proc = self.spawn(n, slot, cause, repl=True)
        self.proc = proc
        sel = selectors.DefaultSelector()
        self.link.register(sel)
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        reading = True  # proc.stdout is in the selector
        self.ready = False
        self.held = b""  # client bytes that arrived before the firmware's REPL could take them
        self.pending = b""  # console bytes not yet a whole line, for events
        errors = []
        streams = 2
        try:
            while streams:
                if reading and self.link.paused():
                    sel.unregister(proc.stdout)
                    reading = False
                elif not reading and not self.link.paused():
                    sel.register(proc.stdout, selectors.EVENT_READ, "out")
                    reading = True
                remaining = self.remaining()
                if remaining is not None and remaining <= 0:
                    self.emit({"event": "timeout", "boot": n, "seconds": self.timeout})
                    return None
                wait = self.link.wait()
                if wait is not None:
                    remaining = wait if remaining is None else min(remaining, wait)
                for key, mask in sel.select(remaining):
                    if key.data in ("accept", "client"):
                        self._from_client(self.link.handle(key, mask))
                    else:
                        data = os.read(key.fileobj.fileno(), 65536)
                        if not data:
                            sel.unregister(key.fileobj)
                            streams -= 1
                            if key.data == "out":
                                reading = None  # gone: never registered again
                        elif key.data == "err":
                            errors += data.decode("utf-8", "replace").splitlines()
                            self._to_client(n, data)
                        else:
                            self._console(n, data)
                self.link.tick()
            status = proc.wait(timeout=10)
        finally:
            sel.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        end = self._ending(n, status, self.ready, errors, self.power_cut(n))
        return SOFT_RESET if end is None else end  # main.py ended: the REPL would be up

    def _from_client(self, data):
        if not data:
            return
        if not self.ready:
            # the runner is starting: a SIGINT now would kill it, and its stdin is not the
            # REPL's yet; the bytes go in once it is ready, as a board's UART buffers them
            self.held += data
            return
        self._to_firmware(data)

    def _to_firmware(self, data):
        proc = self.proc
        if b"\x03" in data and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.stdin.write(data)
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # the firmware is resetting

    def _console(self, n, data):
        if not self.ready:
            # The runner's own lines come before the console: "@@vboard ..." up to "ready".
            self.pending += data
            while not self.ready and b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                text = line.decode("utf-8", "replace")
                if text.startswith(READY):
                    self.ready = text.startswith(READY + "ready")
                    self._runner_line(n, text[len(READY) :])
                else:
                    self._firmware_line(n, text)
            if not self.ready:
                return
            data, self.pending = self.pending, b""
            if self.held:
                held, self.held = self.held, b""
                self._to_firmware(held)
        self._to_client(n, data)

    def _to_client(self, n, data):
        if self.link.send(data) and not self.events_only:
            return
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            text = line.decode("utf-8", "replace").rstrip("\r")
            if self.events_only:
                # the pty has the console: only the firmware's JSON events go to stdout too
                start = text.find('{"event"')
                if start >= 0:
                    self._event_line(n, text[start:])
            else:
                self._firmware_line(n, text)
        if self.events_only:
            self.pending = self.pending[-4096:]  # a long line without an end is no event

    def _event_line(self, n, text):
        try:
            record = json.loads(text)
        except ValueError:
            return
        if isinstance(record, dict) and "event" in record:
            record.setdefault("boot", n)
            self.emit(record)


def serve(board, args, emit):
    if args.repl == "pty":
        link = PtyLink()
    else:
        link = SocketLink(args.repl)
    return ReplRun(board, args, emit, link).run()
