"""`vboard.py boot DIR --repl PORT`: the virtual board's console on socket://127.0.0.1:PORT.

A serial port for mpremote: `mpremote connect socket://127.0.0.1:PORT exec|run|fs ...|soft-reset`.
The board boots as with `boot` (bootloader, boot.py, main.py), then its REPL serves the console
(tools/vboard_rt/vboard_console.py). This bridge relays bytes between one TCP client at a time
and the firmware's stdin/stdout, turns the client's Ctrl-C into SIGINT (the firmware sees
KeyboardInterrupt, as from the UART), and when the firmware resets (machine.reset()) runs the
bootloader and boots again with the client still connected, as a USB serial port stays open
across resets. While no client is connected the console's lines become events on stdout, as
with `boot`. Runs until --timeout, --boots or vboard is interrupted. PORT 0 picks a free port;
the first event says which: {"event": "repl", "port": PORT, "url": "socket://127.0.0.1:PORT"}.
"""

import os
import selectors
import signal
import socket
import tempfile

from vboard_boot import CAUSE_NAMES, PWRON_RESET, READY, SOFT_RESET, BootRun, build_runtime


class ReplRun(BootRun):
    def run(self):
        listener = socket.create_server(("127.0.0.1", self.args.repl))
        self.client = None
        port = listener.getsockname()[1]
        self.emit({"event": "repl", "port": port, "url": "socket://127.0.0.1:%d" % port})
        try:
            with tempfile.TemporaryDirectory(prefix="vboard-rt-") as rt:
                build_runtime(rt, self.args.runtime)
                self.runtime = rt
                cause = PWRON_RESET
                for n in range(1, self.args.boots + 1):
                    slot = self.bootloader(n, cause)
                    cause = self.console(n, slot, cause, listener)
                    if cause is None:
                        return 0
                    self.emit({"event": "reset", "boot": n, "cause": CAUSE_NAMES[cause]})
                self.emit({"event": "stop", "boot": self.args.boots, "reason": "boots"})
                return 0
        finally:
            if self.client is not None:
                self.client.close()
            listener.close()

    def console(self, n, slot, cause, listener):
        """Relay one boot's console. Returns the next reset cause, or None at the timeout."""
        proc = self.spawn(n, slot, cause, repl=True)
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, "accept")
        if self.client is not None:
            sel.register(self.client, selectors.EVENT_READ, "client")
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        self.sel = sel
        self.ready = False
        self.pending = b""  # console bytes not yet a whole line (no client connected)
        errors = []
        streams = 2
        try:
            while streams:
                remaining = self.remaining()
                if remaining is not None and remaining <= 0:
                    self.emit({"event": "timeout", "boot": n, "seconds": self.timeout})
                    return None
                for key, _ in sel.select(remaining):
                    if key.data == "accept":
                        self._accept(listener)
                    elif key.data == "client":
                        if key.fileobj is self.client:  # not one dropped earlier in this batch
                            self._from_client(proc)
                    else:
                        data = os.read(key.fileobj.fileno(), 65536)
                        if not data:
                            sel.unregister(key.fileobj)
                            streams -= 1
                        elif key.data == "err":
                            errors += data.decode("utf-8", "replace").splitlines()
                            self._to_client(n, data)
                        else:
                            self._console(n, data)
            status = proc.wait(timeout=10)
        finally:
            sel.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        end = self._ending(n, status, self.ready, errors, self.power_cut(n))
        return SOFT_RESET if end is None else end  # main.py ended: the REPL would be up

    def _accept(self, listener):
        conn, _ = listener.accept()
        self._drop_client()  # one client at a time, the newest wins
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = conn
        self.sel.register(conn, selectors.EVENT_READ, "client")

    def _drop_client(self):
        """Forget the client: out of the selector before its socket closes (fds are reused)."""
        if self.client is None:
            return
        try:
            self.sel.unregister(self.client)
        except (KeyError, ValueError):
            pass  # a previous boot's selector, already closed
        self.client.close()
        self.client = None

    def _from_client(self, proc):
        try:
            data = self.client.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop_client()
            return
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
        self._to_client(n, data)

    def _to_client(self, n, data):
        if self.client is not None:
            try:
                self.client.sendall(data)
                return
            except OSError:
                self._drop_client()
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            self._firmware_line(n, line.decode("utf-8", "replace").rstrip("\r"))


def serve(board, args, emit):
    return ReplRun(board, args, emit).run()
