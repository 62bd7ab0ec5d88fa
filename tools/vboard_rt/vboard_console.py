# The virtual board's console for `vboard.py boot --repl`: MicroPython's REPL protocol on
# stdin/stdout, as a board speaks it on its serial port, so that mpremote works against the board.
#
# Friendly REPL (">>> ", Ctrl-D soft reset) and the raw REPL that mpremote drives: Ctrl-A enters
# it ("raw REPL; CTRL-B to exit\r\n>"), code ends with Ctrl-D and is answered "OK", its output,
# "\x04", the error text, "\x04" and ">"; raw-paste mode ("\x05A\x01" -> "R\x01" + window, one
# "\x01" per window consumed); Ctrl-D on an empty command is a soft reset: fresh globals and
# modules (the board's built-ins survive), boot.py again, and main.py when in the friendly REPL.
# The host bridge (tools/vboard_repl.py) turns a Ctrl-C from the client into SIGINT, which
# MicroPython raises as KeyboardInterrupt in whatever runs, as the UART's Ctrl-C does on a board.
# machine.reset() still ends the process (a raw-REPL command first gets its two end markers): the
# bridge runs the bootloader and boots again.

import gc
import os
import struct
import sys

_RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_BANNER = (
    sys.version.split("; ")[-1].encode()
    + b"; vboard, an ESP32 on the MicroPython unix port\r\n"
    + b'Type "help()" for more information.\r\n'
)
_WINDOW = 256  # raw-paste flow control window (bytes)
_RESET_STATUSES = (0x5E, 0x5D)  # machine.reset(), machine.deepsleep(): the process must end


class Console:
    def __init__(self, run_file, namespace):
        self.run_file = run_file
        self.ns = namespace
        self.inp = sys.stdin.buffer
        self.out = sys.stdout.buffer
        self.keep = set(sys.modules)  # loaded before boot.py: the board's built-in modules

    def write(self, data):
        self.out.write(data)

    def getc(self):
        """One byte of input; Ctrl-C for a KeyboardInterrupt while waiting."""
        try:
            c = self.inp.read(1)
        except KeyboardInterrupt:
            return b"\x03"
        if not c:
            raise SystemExit(0)  # the host closed the console: power off
        return c

    def _exists(self, name):
        try:
            os.stat(name)
            return True
        except OSError:
            return False

    def boot(self, run_main):
        """boot.py, then main.py when run_main; a traceback is printed, as on the board."""
        for name in ("boot.py", "main.py") if run_main else ("boot.py",):
            if not self._exists(name):
                continue
            try:
                self.run_file(name, self.ns)
            except SystemExit as exc:
                if exc.args and exc.args[0] in _RESET_STATUSES:
                    raise
                return
            except BaseException as exc:  # KeyboardInterrupt too: the REPL comes up
                sys.print_exception(exc)
                return

    def soft_reset(self, run_main):
        for name in list(sys.modules):
            if name not in self.keep:
                del sys.modules[name]
        self.ns.clear()
        self.ns["__name__"] = "__main__"
        gc.collect()
        self.write(b"MPY: soft reboot\r\n")
        self.boot(run_main)

    def execute(self, source, mode):
        """Run source; returns the exception it raised, or None."""
        try:
            exec(compile(source, "<stdin>", mode), self.ns)
        except SystemExit as exc:
            if exc.args and exc.args[0] in _RESET_STATUSES:
                raise
        except BaseException as exc:
            return exc
        return None

    def run_raw(self, source):
        try:
            exc = self.execute(source, "exec")
        except SystemExit:
            # machine.reset() in a raw-REPL command: end the command as MicroPython's raw REPL
            # ends one that raised SystemExit (both end markers, no error text), so that
            # `mpremote exec "machine.reset()"` returns; then the process ends and the bridge
            # boots the board again. On a board the chip resets mid-command instead, and
            # mpremote waits forever (a USB-UART bridge) or loses the port (native USB).
            self.write(b"\x04\x04")
            raise
        self.write(b"\x04")
        if exc is not None:
            sys.print_exception(exc)
        self.write(b"\x04")

    def paste(self):
        """Raw-paste mode: the command, with flow control; the caller has sent the header."""
        buf = bytearray()
        used = 0
        while True:
            c = self.getc()
            if c == b"\x04":
                self.write(b"\x04")
                return bytes(buf)
            if c == b"\x03":
                continue
            buf += c
            used += 1
            if used == _WINDOW:
                used = 0
                self.write(b"\x01")

    def raw(self):
        self.write(_RAW_BANNER + b">")
        buf = bytearray()
        while True:
            c = self.getc()
            if c == b"\x01":
                buf = bytearray()
                self.write(_RAW_BANNER + b">")
            elif c == b"\x02":
                self.write(b"\r\n" + _BANNER + b">>> ")
                return "friendly"
            elif c == b"\x03":
                buf = bytearray()
            elif c == b"\x04":
                self.write(b"OK")
                if not buf:
                    self.write(b"\r\n")
                    return "soft-raw"
                self.run_raw(bytes(buf))
                buf = bytearray()
                self.write(b">")
            elif c == b"\x05" and not buf:
                if self.getc() == b"A" and self.getc() == b"\x01":
                    self.write(b"R\x01" + struct.pack("<H", _WINDOW))
                    self.run_raw(self.paste())
                    self.write(b">")
            else:
                buf += c

    def friendly(self, banner=True):
        if banner:
            self.write(_BANNER)
        self.write(b">>> ")
        line = bytearray()
        while True:
            c = self.getc()
            if c == b"\x01":
                self.write(b"\r\n")
                return "raw"
            if c == b"\x02":
                self.write(b"\r\n" + _BANNER + b">>> ")
                line = bytearray()
            elif c == b"\x03":
                self.write(b"\r\n>>> ")
                line = bytearray()
            elif c == b"\x04":
                if not line:
                    self.write(b"\r\n")
                    return "soft"
            elif c == b"\r":
                self.write(b"\r\n")
                if line:
                    exc = self.execute(bytes(line), "single")
                    if exc is not None:
                        sys.print_exception(exc)
                line = bytearray()
                self.write(b">>> ")
            elif c in (b"\x08", b"\x7f"):
                if line:
                    line.pop()
                    self.write(b"\x08 \x08")
            elif c != b"\n":
                line += c
                self.write(c)

    def serve(self, ready):
        """Print the runner's `ready` line, then boot.py and main.py, then the REPL, until the
        process ends (reset, host). The bridge sends SIGINT for a Ctrl-C only once it has read
        that line, so the line is printed where a KeyboardInterrupt is handled: a Ctrl-C from
        then on ends the boot at the REPL, and never the process."""
        mode = "boot"
        while True:
            try:
                if mode == "boot":
                    mode = "friendly"
                    print(ready)
                    ready = None
                    self.boot(True)
                elif mode == "friendly":
                    mode = self.friendly()
                elif mode == "raw":
                    mode = self.raw()
                else:
                    self.soft_reset(mode == "soft")
                    mode = "friendly" if mode == "soft" else "raw"
            except KeyboardInterrupt:  # a Ctrl-C between two reads
                mode = "friendly" if mode not in ("raw", "soft-raw") else "raw"
