"""The virtual board: the real firmware on the MicroPython unix port, over ESP-IDF's flash formats.

usage:
  vboard.py create DIR --board esp32 --version 1.0.0 --config CFG.json [--put SRC:DST ...]
                       [--image APP.bin] [--force]
  vboard.py boot DIR [--boots N] [--heap 64k] [--timeout S] [--runtime i386|x64]
                     [--power-cut-after-writes K [--power-cut-boot B]] [--repl PORT]
  vboard.py inspect DIR
  vboard.py write-flash DIR ADDRESS FILE

DIR holds flash.bin (the whole SPI flash: partition table at 0x8000, otadata with CRCs, ESP32 app
images, a LittleFS `vfs` partition), board.json (the profile) and state.json (the slot that ran
last). `boot` prints one JSON object per line on stdout:

  {"event": "boot", "boot": n, "slot", "version", "state", "reset_cause", "heap"}
  {"event": "rollback", "boot": n, "from", "to", "reason": "unconfirmed" | "invalid image"}
  {"event": "reset", "boot": n, "cause": "soft" | "deepsleep" | "watchdog" | "power_on"}
  {"event": "crash", "boot": n, "exit": status, "stderr": [last lines]}  (then a watchdog reset)
  {"event": "power_cut", "boot": n, "after_writes": K}                   (then a power-on boot)
  {"event": "log", "boot": n, "line": "..."[, "stream": "stderr" | "vboard"]}  (other output)
  {"event": "halt", "boot": n}             main.py returned: the board sits at its REPL; stop
  {"event": "timeout", "boot": n, "seconds": S}                          stop
  {"event": "stop", "boot": n, "reason": "boots"}                        --boots N reached
  {"event": "error", "message": "..."}     the board broke (no bootable slot, corrupt flash)
  {"event": "repl", "port": PORT, "url": "socket://127.0.0.1:PORT"}    with --repl (first)
and passes every JSON line of the firmware with an "event" key through ("boot" added); after the
firmware's {"event": "idle"} it stops the board. Exit status: 0, 1 for a usage error, 2 when
the board or this tool broke.

The firmware runs in `micropython -X heapsize=...` (tools/vboard_rt/vboard_runner.py), by default
on the 32-bit build (tools/runtimes.py: an ESP32's object sizes, so its heap is a board's), with the
vfs partition mounted as / and the device stand-ins of tools/devices as its esp32/machine/network
modules; the app gets the board's heap budget (--heap) free when boot.py starts.
--power-cut-after-writes K: the K-th flash erase or program of boot B (counted in the esp32 shim,
the file system's writes included, since the vfs sits on esp32.Partition as on a board) lands
half-way and the process is killed; the board then boots again from power-on.
"""

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

import appimage
import cli
import fsimage
import runtimes

import boards

ROOT = Path(__file__).resolve().parent.parent
DEVICES = Path(__file__).resolve().parent / "devices"
RUNNER = Path(__file__).resolve().parent / "vboard_rt" / "vboard_runner.py"
sys.path.insert(0, str(DEVICES))
import espidf  # noqa: E402  (the ESP-IDF formats, shared with the esp32 shim)
import machine  # noqa: E402  (the machine shim: reset causes, exit statuses)

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
APP_IMAGE_SIZE = 64 * 1024
DEFAULT_BOOTS = 10
DEFAULT_TIMEOUT_S = 120.0
STDERR_TAIL = 20
READY = "@@vboard "

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
STATE_NAMES = {
    espidf.OTA_IMG_NEW: "NEW",
    espidf.OTA_IMG_PENDING_VERIFY: "PENDING_VERIFY",
    espidf.OTA_IMG_VALID: "VALID",
    espidf.OTA_IMG_INVALID: "INVALID",
    espidf.OTA_IMG_ABORTED: "ABORTED",
    espidf.OTA_IMG_UNDEFINED: "UNDEFINED",
}


class VBoardError(cli.ToolError):
    """A usage error: printed as `vboard: message`, exit status 1."""


class BoardBroken(cli.ToolError):
    """The board or the tool broke: an error event (for `boot`), exit status 2."""

    status = 2


# --- the board folder ----------------------------------------------------------------------------


class Board:
    def __init__(self, path):
        self.dir = Path(path)
        self.flash_path = self.dir / "flash.bin"
        self.state_path = self.dir / "state.json"
        if not self.flash_path.is_file() or not (self.dir / "board.json").is_file():
            raise VBoardError("%s holds no virtual board (make one with `create`)" % path)
        try:
            self.profile = boards.load(self.dir / "board.json")
        except boards.BoardError as exc:
            raise BoardBroken(str(exc)) from None
        self.chip = self.profile["chip"]
        self.chip_id = espidf.CHIP_IDS[self.chip]
        size = int(self.profile["flash_size"], 16)
        if self.flash_path.stat().st_size != size:
            raise BoardBroken("%s is not %d bytes (flash_size)" % (self.flash_path, size))

    def open_flash(self):
        """(espidf.Flash, partition entries, otadata entry, otadata entries)."""
        flash = espidf.Flash(str(self.flash_path))
        try:
            parts = espidf.partitions(flash)
            od, entries = espidf.read_otadata(flash, parts)
        except (ValueError, OSError) as exc:
            flash.close()
            raise BoardBroken("corrupt flash: %s" % exc) from None
        return flash, parts, od, entries

    def state(self):
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def save_state(self, **values):
        state = self.state()
        state.update(values)
        tmp = self.state_path.with_name("state.json.tmp")
        tmp.write_text(json.dumps(state) + "\n")
        tmp.replace(self.state_path)


def _slot_version(flash, part):
    return espidf.app_version(lambda off, n: flash.read(part[3] + off, n))


def _entry_state(parts, entries, part):
    """The otadata state name of the entry that selects `part`, or UNDEFINED."""
    slots = espidf.ota_slots(parts)
    active = espidf.select_entry(entries)
    if active >= 0 and slots and slots[(entries[active][0] - 1) % len(slots)] == part:
        return STATE_NAMES.get(entries[active][1], "0x%x" % entries[active][1])
    return "UNDEFINED"


# --- create --------------------------------------------------------------------------------------


def cmd_create(args):
    try:
        profile = boards.load(args.board)
    except boards.BoardError as exc:
        raise VBoardError(str(exc)) from None
    if args.image:
        try:
            app = Path(args.image).read_bytes()
        except OSError as exc:
            raise VBoardError("--image %s: %s" % (args.image, exc.strerror or exc)) from None
        try:
            info = appimage.describe(app, profile["chip"])
        except appimage.ImageError as exc:
            raise VBoardError("--image %s: %s" % (args.image, exc)) from None
        if not info["valid"]:
            raise VBoardError("--image %s: %s" % (args.image, info["error"]))
        if args.version and args.version != info["version"]:
            raise VBoardError(
                "--image %s is version %s, not --version %s"
                % (args.image, info["version"], args.version)
            )
        version = info["version"]
    elif args.version:
        version = args.version
        if len(version) > 31 or not version.isprintable() or not version.isascii():
            raise VBoardError("--version %r: 1 to 31 printable ASCII characters" % version)
        app = espidf.make_app_image(version, profile["chip"], size=APP_IMAGE_SIZE)
    else:
        raise VBoardError("create needs --version (or --image)")
    slot = espidf.ota_slots(espidf.profile_entries(profile))[0]
    if len(app) > slot[4]:
        raise VBoardError("the image (%d bytes) does not fit %s" % (len(app), slot[0]))
    out = Path(args.dir)
    if out.exists() and not out.is_dir():
        raise VBoardError("%s exists and is not a directory" % out)
    if (out / "flash.bin").exists() or (out / "board.json").exists():
        if not args.force:
            raise VBoardError("%s already holds a board (--force replaces it)" % out)
    try:
        config = fsimage.read_config(args.config)
        puts = [fsimage.parse_put(p) for p in args.put]
        vfs_offset, vfs_size = boards.partition(profile, boards.VFS_LABEL)
        files = fsimage.board_files(profile, config, puts)
        image = fsimage.build(vfs_size, files)
    except fsimage.FsImageError as exc:
        raise VBoardError(str(exc)) from None

    # Every check passed: now write, the flash through a temporary name.
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "flash.bin.tmp"
    espidf.make_board_flash(str(tmp), profile)
    flash = espidf.Flash(str(tmp))
    parts = espidf.partitions(flash)
    flash.write(espidf.ota_slots(parts)[0][3], app)
    od, _ = espidf.read_otadata(flash, parts)
    espidf.write_ota_entry(flash, od, 0, 1, espidf.OTA_IMG_VALID)
    flash.write(vfs_offset, image)
    flash.close()
    tmp.replace(out / "flash.bin")
    (out / "board.json").write_text(boards.dumps(profile))
    for stale in ("state.json", "state.json.tmp"):
        (out / stale).unlink(missing_ok=True)
    Board(out).save_state(running=slot[0], version=version, boots=0)
    print(
        "vboard: %s: %s board (%s), %s holds %s, %d files in vfs"
        % (out, profile["name"], profile["chip"], slot[0], version, len(files))
    )
    return 0


# --- boot ----------------------------------------------------------------------------------------


class Emitter:
    def __init__(self, stream=sys.stdout):
        self.stream = stream

    def __call__(self, record):
        try:
            self.stream.write(json.dumps(record) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            pass


def build_runtime(folder, runtime=DEFAULT_RUNTIME):
    """Compile the runner and the device shims to .mpy in `folder` (copies when no mpy-cross)."""
    tool = fsimage.mpy_cross()
    sources = RUNTIME_MODULES + ((FROZEN,) if runtimes.shim_path(runtime) else ())
    for src in sources:
        if tool:
            try:
                data = fsimage.compile_mpy(tool, src, src.name)
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
    """One `boot` invocation: bootloader, firmware process, events, until a stop condition."""

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

    def run(self):
        with tempfile.TemporaryDirectory(prefix="vboard-rt-") as rt:
            build_runtime(rt, self.args.runtime)
            self.runtime = rt
            cause = PWRON_RESET
            for n in range(1, self.args.boots + 1):
                slot = self.bootloader(n, cause)
                end = self.firmware(n, slot, cause)
                if end is None:
                    return 0
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
            version = _slot_version(flash, part)
            state = _entry_state(parts, entries, part)
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
        env.update(
            FOTA_FLASH=str(self.board.flash_path.resolve()),
            FOTA_CHIP=self.board.chip,
            FOTA_RUNNING=slot,
            FOTA_RESET_CAUSE=str(cause),
            MICROPYPATH=".frozen:" + self.runtime,
        )
        if self.power_cut(n):
            env["FOTA_POWER_CUT"] = str(args.power_cut_after_writes)
        heap = self.budget + EMULATION_HEAP
        try:
            cmd = runtimes.command(args.runtime)
        except runtimes.RuntimeMissing as exc:
            raise BoardBroken(str(exc)) from None
        cmd += ["-X", "heapsize=%d" % heap, "-m", "vboard_runner"]
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
            return None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        return self._ending(n, status, ready, errors, cut)

    def _runner_line(self, n, text):
        if text.startswith("ready "):
            free = int(text.split()[1])
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
        tail = [line for line in errors if RUNNER.name not in line][-STDERR_TAIL:]
        if status == -signal.SIGKILL and cut:
            self._stderr_logs(n, errors)
            self.emit(
                {
                    "event": "power_cut",
                    "boot": n,
                    "after_writes": self.args.power_cut_after_writes,
                }
            )
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
            return None
        self.emit({"event": "crash", "boot": n, "exit": status, "stderr": tail})
        return WDT_RESET

    def _stderr_logs(self, n, errors):
        for line in errors:
            self.emit({"event": "log", "boot": n, "stream": "stderr", "line": line})


def cmd_boot(args):
    board = Board(args.dir)
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
    return BootRun(board, args, Emitter()).run()


# --- inspect, write-flash ------------------------------------------------------------------------


def inspect_board(board):
    """The board's state as a dict (what `inspect` prints)."""
    flash, parts, od, entries = board.open_flash()
    try:
        try:
            nxt, rollback = espidf.bootloader(flash, board.chip_id, write=False)
            next_boot = {"slot": nxt[0], "rollback": rollback}
        except OSError as exc:
            next_boot = {"slot": None, "error": exc.args[-1]}
        slots = []
        app_parts = [p for p in parts if p[1] == espidf.TYPE_APP]
        for p in app_parts:
            slots.append(_describe_slot(flash, p, board.chip))
        labels = espidf.ota_slots(parts)
        otadata = []
        for i, (seq, state, valid) in enumerate(entries):
            blank = seq == 0xFFFFFFFF
            otadata.append(
                {
                    "sector": i,
                    "seq": None if blank else seq,
                    "state": STATE_NAMES.get(state, "0x%x" % state),
                    "crc_ok": valid,
                    "slot": labels[(seq - 1) % len(labels)][0] if valid and labels else None,
                }
            )
        vfs_offset, vfs_size = boards.partition(board.profile, boards.VFS_LABEL)
        vfs = {"label": boards.VFS_LABEL, "offset": "0x%x" % vfs_offset, "size": vfs_size}
        try:
            files = fsimage.listing(flash.read(vfs_offset, vfs_size))
            vfs["files"] = [{"path": path, "size": size} for path, size in files]
        except fsimage.FsImageError as exc:
            vfs["files"] = None
            vfs["error"] = str(exc)
    finally:
        flash.close()
    state = board.state()
    return {
        "board": board.profile["name"],
        "chip": board.chip,
        "booted": state.get("running") or next_boot["slot"],
        "boots": state.get("boots", 0),
        "next_boot": next_boot,
        "slots": slots,
        "otadata": otadata,
        "vfs": vfs,
    }


def _describe_slot(flash, part, chip):
    out = {"label": part[0], "offset": "0x%x" % part[3], "size": part[4]}
    data = flash.read(part[3], part[4])
    if data[:1] == b"\xff" and data.count(0xFF) == len(data):
        out.update(blank=True, valid=False, version=None, sha256=None)
        return out
    try:
        info = appimage.describe(data, chip)
    except appimage.ImageError as exc:
        out.update(blank=False, valid=False, version=None, sha256=None, error=str(exc))
        return out
    out.update(
        blank=False,
        valid=info["valid"],
        version=info["version"],
        image_size=info["length"],
        sha256=info["sha256"],
    )
    if info["error"]:
        out["error"] = info["error"]
    return out


def cmd_inspect(args):
    board = Board(args.dir)
    print(json.dumps(inspect_board(board), indent=2))
    return 0


def cmd_write_flash(args):
    """Like `esptool write-flash ADDRESS FILE`: erase the sectors the file covers, then write."""
    board = Board(args.dir)
    try:
        address = int(args.address, 0)
    except ValueError:
        raise VBoardError("bad address %r (e.g. 0x310000)" % args.address) from None
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise VBoardError("%s: %s" % (args.file, exc.strerror or exc)) from None
    size = int(board.profile["flash_size"], 16)
    if address % espidf.SECTOR:
        raise VBoardError("address 0x%x is not a multiple of 0x1000" % address)
    if not data or address + len(data) > size:
        raise VBoardError(
            "0x%x + %d bytes does not fit the %d-byte flash" % (address, len(data), size)
        )
    erase = (len(data) + espidf.SECTOR - 1) // espidf.SECTOR * espidf.SECTOR
    flash = espidf.Flash(str(board.flash_path))
    try:
        flash.erase(address, erase)
        flash.write(address, data)
    finally:
        flash.close()
    print("vboard: wrote %d bytes at 0x%x of %s" % (len(data), address, board.flash_path))
    return 0


# --- command line --------------------------------------------------------------------------------


def _parser():
    parser = cli.Parser(prog="vboard.py", description="The virtual board: create, boot, inspect.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=cli.Parser)
    p = sub.add_parser("create", help="a fresh board: VERSION in ota_0, the agent and CFG in vfs")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--board", default="esp32", help="profile in boards/ (default esp32)")
    p.add_argument("--version", help="version of the app image in ota_0")
    p.add_argument("--config", required=True, metavar="CFG.json", help="installed as /ota.json")
    p.add_argument(
        "--put",
        action="append",
        default=[],
        metavar="SRC:DST",
        help="also install file SRC as DST (repeatable; wins over the agent's files)",
    )
    p.add_argument("--image", metavar="APP.bin", help="flash this app image into ota_0")
    p.add_argument("--force", action="store_true", help="replace a board already in DIR")
    p = sub.add_parser("boot", help="run the board until idle, N boots or the timeout")
    p.add_argument("dir", metavar="DIR")
    p.add_argument(
        "--boots",
        type=int,
        default=DEFAULT_BOOTS,
        metavar="N",
        help="stop after N boots (default %d)" % DEFAULT_BOOTS,
    )
    p.add_argument("--heap", metavar="SIZE", help="the app's heap (default: the board's budget)")
    p.add_argument(
        "--runtime",
        choices=runtimes.NAMES,
        default=DEFAULT_RUNTIME,
        help="MicroPython build: i386 (32-bit, an ESP32's object sizes; default) or x64",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop after S seconds (default %d; none with --repl)" % DEFAULT_TIMEOUT_S,
    )
    p.add_argument(
        "--power-cut-after-writes",
        type=int,
        metavar="K",
        help="cut the power at the K-th flash erase/program of boot B",
    )
    p.add_argument(
        "--power-cut-boot",
        type=int,
        default=1,
        metavar="B",
        help="the boot the power cut hits (default 1)",
    )
    p.add_argument(
        "--repl",
        type=int,
        metavar="PORT",
        help="serve the raw REPL on socket://127.0.0.1:PORT for mpremote",
    )
    p = sub.add_parser("inspect", help="JSON: slots, versions, otadata states, vfs files")
    p.add_argument("dir", metavar="DIR")
    p = sub.add_parser("write-flash", help="write FILE at ADDRESS, like esptool write-flash")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("file", metavar="FILE")
    return parser


COMMANDS = {
    "create": cmd_create,
    "boot": cmd_boot,
    "inspect": cmd_inspect,
    "write-flash": cmd_write_flash,
}


def _terminated(signum, frame):
    raise SystemExit(128 + signum)  # unwinds: the firmware process is killed on the way out


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminated)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("a command is needed: %s" % ", ".join(COMMANDS))
    try:
        return COMMANDS[args.command](args)
    except BoardBroken as exc:
        if args.command == "boot":
            Emitter()({"event": "error", "message": str(exc)})
        raise


if __name__ == "__main__":
    sys.modules.setdefault("vboard", sys.modules[__name__])  # one module, also for vboard_repl
    sys.exit(cli.run("vboard", main))
