# The virtual board's boot (`vboard.py boot`): the emulated bootloader, the firmware process on
# the MicroPython unix port, and its output turned into events, boot after boot until a stop.
#
# tools/vboard.py is the command line and documents the events; tools/vboard_repl.py subclasses
# BootRun to serve the board's console instead.

import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import fsimage
import runtimes
import vboard_writes
from vboard_board import DEVICES, Board, BoardBroken, VBoardError, entry_state, slot_version

import boards

RUNNER = Path(__file__).resolve().parent / "vboard_rt" / "vboard_runner.py"
import espidf  # noqa: E402  (tools/devices, put on the path by vboard_board)
import machine  # noqa: E402  (the machine stand-in: reset causes, exit statuses)

RUNTIME_MODULES = (
    Path(__file__).resolve().parent / "vboard_rt" / "vboard_console.py",
    RUNNER,
    DEVICES / "esp32.py",
    DEVICES / "espflash.py",
    DEVICES / "machine.py",
    DEVICES / "network.py",
)
# what a board's firmware freezes and a runtime may lack (Debian's build has `tls` but no `ssl`)
FROZEN = runtimes.SHIMS / "ssl.py"
DEFAULT_RUNTIME = "i386"  # 4-byte objects and 16-byte heap blocks, as on an ESP32
EMULATION_HEAP = 128 * 1024  # heap for the shims and the runner, on top of the board's budget
DEFAULT_BOOTS = 10
DEFAULT_TIMEOUT_S = 120.0
STDERR_TAIL = 20
READY = "@@vboard "
# exit status when the board stopped without the agent going idle: main.py returned (the agent
# halted, e.g. on a config error) or --timeout ran out
NOT_IDLE_STATUS = 3

# machine.reset_cause() values, as an ESP32 reports them, and the machine shim's exit statuses
PWRON_RESET = machine.PWRON_RESET  # first boot, power cut
HARD_RESET = machine.HARD_RESET
WDT_RESET = machine.WDT_RESET  # after a crash: the watchdog would have reset the board
DEEPSLEEP_RESET = machine.DEEPSLEEP_RESET  # after machine.deepsleep()
SOFT_RESET = machine.SOFT_RESET  # after machine.reset() (ESP_RST_SW)
CAUSE_NAMES = {
    PWRON_RESET: "power_on",
    HARD_RESET: "hard",
    WDT_RESET: "watchdog",
    DEEPSLEEP_RESET: "deepsleep",
    SOFT_RESET: "soft",
}
RESET_EXIT_STATUS = machine.RESET_EXIT_STATUS
DEEPSLEEP_EXIT_STATUS = machine.DEEPSLEEP_EXIT_STATUS


class Emitter:
    def __init__(self, stream=sys.stdout):
        self.stream = stream

    def __call__(self, record):
        try:
            self.stream.write(json.dumps(record) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            pass


def build_runtime(folder, runtime=DEFAULT_RUNTIME, modules=RUNTIME_MODULES, frozen=True):
    """Compile the runner and the device shims to .mpy in `folder` (copies when no mpy-cross);
    frozen: add the ssl a board's firmware freezes where the runtime lacks it."""
    tool = fsimage.mpy_cross()
    sources = modules + ((FROZEN,) if frozen and runtimes.shim_path(runtime) else ())
    for src in sources:
        if tool:
            try:
                data = fsimage.compile_mpy(tool, src, fsimage.source_name(src.name))
            except fsimage.FsImageError as exc:
                raise BoardBroken(str(exc)) from None
            (Path(folder) / (src.stem + ".mpy")).write_bytes(data)
        else:
            shutil.copy(src, Path(folder) / src.name)


def _pump(stream, kind, q):
    for raw in iter(stream.readline, b""):
        q.put((kind, raw.decode("utf-8", "replace").rstrip("\r\n")))
    q.put((kind, None))


class BootRun:
    """One `boot` invocation: bootloader, firmware process, events, until a stop condition.

    A board of another kind (tools/vboard_nrf.py) overrides bootloader(), board_env() and these:
    """

    runner = RUNNER.stem  # the module the firmware process runs
    modules = RUNTIME_MODULES  # compiled into the runtime folder
    frozen = True  # the runtime gets the ssl a board's firmware freezes

    def __init__(self, board, args, emit):
        self.board = board
        self.args = args
        self.emit = emit
        self.budget = (
            boards.parse_size(args.heap) if args.heap else boards.heap_bytes(board.profile)
        )
        timeout = args.timeout
        if timeout is None and args.repl is None:
            timeout = DEFAULT_TIMEOUT_S
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.runtime = None
        self.writes = None  # the write log (vboard_writes.WriteLog), made with the runtime
        self.status = 0  # NOT_IDLE_STATUS after a halt or a timeout

    def run(self):
        with tempfile.TemporaryDirectory(prefix="vboard-rt-") as rt:
            build_runtime(rt, self.args.runtime, self.modules, self.frozen)
            self.runtime = rt
            cause = PWRON_RESET
            for n in range(1, self.args.boots + 1):
                slot = self.bootloader(n, cause)
                end = self.firmware(n, slot, cause)
                if end is None:
                    return self.status
                cause = end
                self.emit({"event": "reset", "boot": n, "cause": CAUSE_NAMES[cause]})
            self.emit({"event": "stop", "boot": self.args.boots, "reason": "boots"})
            return 0

    def bootloader(self, n, cause):
        """Run the emulated second-stage bootloader; emit rollback and boot; return the slot."""
        flash, parts, _, entries = self.board.open_flash()
        try:
            wanted = espidf.boot_slot(parts, entries)
            active = espidf.select_entry(entries)
            pending = active >= 0 and entries[active][1] == espidf.OTA_IMG_PENDING_VERIFY
            try:
                part, _ = espidf.bootloader(flash, self.board.chip_id)
            except OSError as exc:
                raise BoardBroken("boot %d: %s" % (n, exc.args[-1])) from None
            _, entries = espidf.read_otadata(flash, parts)
            version = slot_version(flash, part)
            state = entry_state(parts, entries, part)
        finally:
            flash.close()
        if part != wanted:
            reason = "unconfirmed" if pending else "invalid image"
            self.emit(
                {"event": "rollback", "boot": n, "from": wanted[0], "to": part[0], "reason": reason}
            )
        self.emit(
            {
                "event": "boot",
                "boot": n,
                "slot": part[0],
                "version": version,
                "state": state,
                "reset_cause": CAUSE_NAMES[cause],
                "heap": self.budget,
            }
        )
        total = self.board.state().get("boots", 0) + 1
        self.board.save_state(running=part[0], version=version, boots=total)
        return part[0]

    def spawn(self, n, slot, cause, repl=False):
        """Start the firmware process of boot n (its own session: a Ctrl-C meant for vboard
        does not reach it)."""
        args = self.args
        env = dict(os.environ)
        env.pop("FOTA_POWER_CUT", None)
        env.update(self.board_env(slot))
        env.update(FOTA_RESET_CAUSE=str(cause), MICROPYPATH=".frozen:" + self.runtime)
        if self.power_cut(n):
            env["FOTA_POWER_CUT"] = str(args.power_cut_after_writes)
        env.pop(vboard_writes.ENV, None)
        env.update(self.write_log().env(self.power_cut(n)))
        heap = self.budget + EMULATION_HEAP
        try:
            cmd = runtimes.command(args.runtime)
        except runtimes.RuntimeMissing as exc:
            raise BoardBroken(str(exc)) from None
        cmd += ["-X", "heapsize=%d" % heap, "-m", self.runner]
        cmd += [str(self.budget)] + (["repl"] if repl else [])
        return subprocess.Popen(
            cmd,
            cwd=str(self.board.dir),
            env=env,
            stdin=subprocess.PIPE if repl else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def board_env(self, slot):
        """What the device stand-ins read: the flash file, the chip, the running slot."""
        return {
            "FOTA_FLASH": str(self.board.flash_path.resolve()),
            "FOTA_CHIP": self.board.chip,
            "FOTA_RUNNING": slot,
        }

    def write_parts(self):
        """The partitions the write log names writes by: (label, type, subtype, offset, size,
        flags) rows of the flash's partition table."""
        flash, parts, _, _ = self.board.open_flash()
        flash.close()
        return parts

    def write_log(self):
        if self.writes is None:
            out = getattr(self.args, "trace_writes", None)
            self.writes = vboard_writes.WriteLog(self.write_parts(), self.runtime, out)
        return self.writes

    def power_cut(self, n):
        """Does the power cut hit boot n?"""
        return bool(self.args.power_cut_after_writes) and n == self.args.power_cut_boot

    def remaining(self):
        """Seconds left before --timeout (None: no timeout)."""
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def firmware(self, n, slot, cause):
        """Run boot.py/main.py once. Returns the next boot's reset cause, or None to stop."""
        cut = self.power_cut(n)
        proc = self.spawn(n, slot, cause)
        q = queue.Queue()
        for stream, kind in ((proc.stdout, "out"), (proc.stderr, "err")):
            threading.Thread(target=_pump, args=(stream, kind, q), daemon=True).start()
        ready = False
        errors = []
        open_streams = 2
        try:
            while open_streams:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    self.emit({"event": "timeout", "boot": n, "seconds": self.timeout})
                    self.status = NOT_IDLE_STATUS
                    return None
                try:
                    kind, line = q.get(timeout=remaining)
                except queue.Empty:
                    continue
                if line is None:
                    open_streams -= 1
                elif kind == "err":
                    errors.append(line)
                elif line.startswith(READY):
                    ready = ready or line.startswith(READY + "ready")
                    self._runner_line(n, line[len(READY) :])
                elif self._firmware_line(n, line):
                    return None  # idle: the agent waits a full poll interval
            status = proc.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.emit({"event": "timeout", "boot": n, "seconds": self.timeout})
            self.status = NOT_IDLE_STATUS
            return None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            self.write_log().collect(n)
        return self._ending(n, status, ready, errors, cut)

    def _runner_line(self, n, text):
        if text.startswith("ready "):
            fields = text.split()  # "ready FREE ALLOC"; runners before ALLOC print FREE alone
            free = int(fields[1])
            if getattr(self.args, "ready_event", False):
                record = {"event": "ready", "boot": n, "free": free}
                if len(fields) > 2:
                    record["alloc"] = int(fields[2])
                self.emit(record)
            if free < self.budget - 1024:
                self.emit(
                    {
                        "event": "log",
                        "boot": n,
                        "stream": "vboard",
                        "line": "the emulation left %d bytes of heap, below the budget %d"
                        % (free, self.budget),
                    }
                )
        else:
            self.emit({"event": "log", "boot": n, "stream": "vboard", "line": text})

    def _firmware_line(self, n, line):
        """Emit one stdout line of the firmware; True when it was the idle event."""
        record = None
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
        if isinstance(record, dict) and "event" in record:
            record.setdefault("boot", n)
            self.emit(record)
            return record["event"] == "idle"
        self.emit({"event": "log", "boot": n, "line": line})
        return False

    def _ending(self, n, status, ready, errors, cut):
        # the runner's own frames are not the board's: keep the traceback as a board prints it
        tail = [line for line in errors if '"%s"' % RUNNER.stem not in line][-STDERR_TAIL:]
        if status == -signal.SIGKILL and cut:
            self._stderr_logs(n, errors)
            record = {
                "event": "power_cut",
                "boot": n,
                "after_writes": self.args.power_cut_after_writes,
            }
            record.update(self.write_log().cut())  # what the cut hit: op, label, offset, size
            self.emit(record)
            return PWRON_RESET
        if not ready:
            raise BoardBroken(
                "boot %d: the runner failed (exit %s): %s"
                % (n, status, " | ".join(tail) or "no output")
            )
        if status == RESET_EXIT_STATUS:
            self._stderr_logs(n, errors)
            return SOFT_RESET
        if status == DEEPSLEEP_EXIT_STATUS:
            self._stderr_logs(n, errors)
            return DEEPSLEEP_RESET
        if status == 0:
            self._stderr_logs(n, errors)
            self.emit({"event": "halt", "boot": n})
            self.status = NOT_IDLE_STATUS
            return None
        self.emit({"event": "crash", "boot": n, "exit": status, "stderr": tail})
        return WDT_RESET

    def _stderr_logs(self, n, errors):
        for line in errors:
            self.emit({"event": "log", "boot": n, "stream": "stderr", "line": line})


def cmd_boot(args, board_class=Board, run_class=BootRun):
    board = board_class(args.dir)
    if args.boots < 1:
        raise VBoardError("--boots must be 1 or more")
    if args.timeout is not None and args.timeout <= 0:
        raise VBoardError("--timeout must be positive")
    if args.heap:
        try:
            boards.parse_size(args.heap)
        except ValueError as exc:
            raise VBoardError("--heap: %s" % exc) from None
    if args.power_cut_after_writes is not None and args.power_cut_after_writes < 1:
        raise VBoardError("--power-cut-after-writes must be 1 or more")
    try:
        runtimes.command(args.runtime)
    except runtimes.RuntimeMissing as exc:
        raise BoardBroken(str(exc)) from None
    lock = open(board.dir / "flash.lock", "w")  # held (locked) until this process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise VBoardError("%s is running in another vboard process" % board.dir) from None
    if args.repl is not None:
        import vboard_repl

        return vboard_repl.serve(board, args, Emitter())
    return run_class(board, args, Emitter()).run()
