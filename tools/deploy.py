"""Put the agent on a real board (or a virtual one through its REPL bridge), or flash MicroPython.

usage:
  deploy.py deploy PORT --board esp32 --config ota.json [--put SRC:DST ...] [--replace-board]
                   [--dry-run]
  deploy.py flash PORT --firmware MICROPYTHON.bin [--board esp32] [--dry-run]

deploy  checks the config with the agent's own start-up check (fota.app.config, under
        CPython; with its CA when a --put file is the config's `ca`), then reads the board's
        /board.json (and, when no --put brings it, the head of its CA file) with mpremote, and
        refuses a board whose profile names another board unless --replace-board is given, or
        a CA the agent would stop on. Then it compiles the agent with mpy-cross and copies with
        mpremote: /lib/fota/*.mpy, /boot.py, /main.py, the config as /ota.json, the board
        profile as /board.json and every --put file (e.g. a CA as /certs/ca.der); on an MCUboot
        board (nrf52840, nrf9160) all of them under /flash, where Zephyr mounts the file
        system. --board and --config have no defaults. PORT is what `mpremote connect` takes:
        /dev/ttyUSB0, COM3, socket://127.0.0.1:PORT.
flash   erases the flash and writes a MicroPython OTA build (an ESP32_GENERIC-OTA firmware.bin
        from micropython.org) with esptool at the chip's bootloader offset. Everything on the
        board is erased, the file system too: run deploy afterwards. ESP32 boards only.
--dry-run prints the commands instead of running them. Errors: `deploy: message`, exit 1.
"""

import ast
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(ROOT / "firmware"))

import cli  # noqa: E402
import fsimage  # noqa: E402

import boards  # noqa: E402

BIN = Path(sys.executable).parent
# where esptool writes a combined MicroPython image: the second-stage bootloader's offset
BOOTLOADER_OFFSET = {"esp32": 0x1000, "esp32s2": 0x1000}  # 0x0 for the newer chips
TIMEOUT_S = 600


class DeployError(cli.ToolError):
    pass


# Runs on the board: the board's /board.json and the first byte of a file (the CA), or None.
_PROBE = """\
def r(p, n):
    try:
        with open(p, 'rb') as f:
            return f.read(n)
    except OSError:
        return None
print('fota-probe', repr((r(%r, 8192), r(%r, 1) if %r else None)))
"""


def mount(profile):
    """Where the board's file system partition is on the board: "" (/) on an ESP32, /flash on
    Zephyr (an MCUboot board), whose _boot.py mounts the storage partition there."""
    return "/flash" if profile.get("slot") == "mcuboot" else ""


def probe_command(port, ca, root=""):
    return [str(BIN / "mpremote"), "connect", port, "exec",
            _PROBE % (root + "/board.json", ca, ca)]  # fmt: skip


def probe(port, ca, root=""):
    """(the board's board.json bytes or None, the first byte of its file `ca` or None)."""
    cmd = probe_command(port, ca, root)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DeployError("mpremote did not answer on %s in %d s" % (port, TIMEOUT_S)) from None
    for line in done.stdout.splitlines():
        if line.startswith("fota-probe "):
            return ast.literal_eval(line[len("fota-probe ") :])
    detail = (done.stderr or done.stdout).strip().splitlines()
    raise DeployError(
        "cannot read the board on %s: %s" % (port, detail[-1] if detail else "no answer")
    )


def check_board(profile, current, replace):
    """Refuses to put `profile` on a board whose /board.json (bytes, or None) names another
    board, or is not a profile at all, unless `replace`. -> a note to print, or None."""
    if current is None:
        return None
    try:
        theirs = json.loads(current)
        name = theirs.get("name") if isinstance(theirs, dict) else None
    except ValueError:
        theirs, name = None, None
    if name == profile["name"]:
        if theirs != json.loads(boards.dumps(profile)):
            return "the board's /board.json (%s) is updated to this checkout's" % name
        return None
    what = "the %s profile" % name if name else "a /board.json that is not a board profile"
    if not replace:
        raise DeployError(
            "the board holds %s, not %s: give --replace-board (make: REPLACE_BOARD=1) to "
            "replace it" % (what, profile["name"])
        )
    return "replacing %s with the %s profile (--replace-board)" % (what, profile["name"])


def check_board_ca(ca, head):
    """The agent's CA check (fota.app.config.ca) on the first byte of the board's CA file."""
    from fota.app import config
    from fota.core.errors import OTAError

    with tempfile.TemporaryDirectory(prefix="fota-deploy-") as tmp:
        local = Path(tmp) / "ca"
        if head is not None:
            local.write_bytes(head)
        try:
            config.ca(str(local))
        except OTAError as exc:
            message = exc.message.replace(str(local), "%s on the board" % ca)
            raise DeployError(message + "; add it with --put CA.der:%s (make: PUT=)" % ca) from None


def deploy_commands(port, files, staging):
    """The mpremote command line that creates the folders and copies `files` ({path: bytes},
    written under staging first)."""
    dirs = sorted({p.rsplit("/", 1)[0] for p in files if p.count("/") > 1})
    mkdirs = "import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n" \
             "        pass\n" % (tuple(_parents(dirs)),)  # fmt: skip
    cmd = [str(BIN / "mpremote"), "connect", port, "exec", mkdirs]
    for i, (path, data) in enumerate(sorted(files.items())):
        local = Path(staging) / ("%03d-%s" % (i, path.rsplit("/", 1)[-1]))
        local.write_bytes(data)
        cmd += ["+", "fs", "cp", str(local), ":" + path]
    return cmd


def _parents(dirs):
    out = []
    for d in dirs:
        parts = d.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if p not in out:
                out.append(p)
    return out


def flash_commands(port, firmware, chip):
    esptool = [str(BIN / "esptool"), "--chip", chip, "--port", port]
    offset = BOOTLOADER_OFFSET.get(chip, 0)
    return [
        esptool + ["erase-flash"],
        esptool + ["write-flash", "-z", "0x%x" % offset, str(firmware)],
    ]


def _run(cmd, dry):
    if dry:
        print(" ".join(shlex.quote(c) for c in cmd))
        return
    done = subprocess.run(cmd, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise DeployError("%s failed (exit status %d)" % (Path(cmd[0]).name, done.returncode))


def main(argv=None):
    parser = cli.Parser(prog="deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deploy", help="copy the agent and its config to a board")
    d.add_argument("port", nargs="?")
    d.add_argument("--board", help="board profile: %s" % ", ".join(boards.names()))
    d.add_argument("--config", help="the board's config, copied as /ota.json")
    d.add_argument("--put", action="append", default=[], metavar="SRC:DST")
    d.add_argument(
        "--replace-board", action="store_true", help="replace a /board.json of another board"
    )
    d.add_argument("--dry-run", action="store_true")
    f = sub.add_parser("flash", help="erase the flash and write a MicroPython OTA build")
    f.add_argument("port")
    f.add_argument("--firmware", help="the MicroPython OTA build to write (no default)")
    f.add_argument("--board", default="esp32")
    f.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if not args.port:
        raise DeployError("no port: give PORT, e.g. /dev/ttyUSB0 (make: PORT=/dev/ttyUSB0)")
    if args.command == "deploy":
        fsimage.require_board_and_config(args, DeployError)
    try:
        profile = boards.load(args.board)
    except boards.BoardError as exc:
        raise DeployError(str(exc)) from None
    if args.command == "flash":
        if not args.firmware:
            raise DeployError(
                "no firmware: give --firmware FILE, a MicroPython OTA build"
                " (make: FIRMWARE=firmware.bin)"
            )
        if not Path(args.firmware).is_file():
            raise DeployError("no such firmware file: %s" % args.firmware)
        if profile.get("slot") == "mcuboot":
            raise DeployError(
                "flash writes an ESP32 build with esptool; an %s is flashed with its own tools "
                "(west flash, nrfjprog): see the README's nRF section" % profile["name"]
            )
        for cmd in flash_commands(args.port, args.firmware, profile["chip"]):
            _run(cmd, args.dry_run)
        return 0
    try:
        puts = [fsimage.parse_put(p) for p in args.put]
    except fsimage.FsImageError as exc:
        raise DeployError(str(exc)) from None
    raw, _, ca = fsimage.check_config(args.config, puts, DeployError, profile)
    root = mount(profile)
    if args.dry_run:
        _run(probe_command(args.port, ca, root), True)
    else:
        current, head = probe(args.port, ca, root)
        note = check_board(profile, current, args.replace_board)
        if ca:
            check_board_ca(ca, head)
        if note:
            print("deploy: " + note)
    files = {root + path: data for path, data in fsimage.board_files(profile, raw, puts).items()}
    with tempfile.TemporaryDirectory(prefix="fota-deploy-") as staging:
        _run(deploy_commands(args.port, files, staging), args.dry_run)
    if not args.dry_run:
        print(
            "deploy: %d files on %s; reset the board to start the agent" % (len(files), args.port)
        )
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("deploy", main))
