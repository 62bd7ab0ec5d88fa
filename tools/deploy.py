"""Put the agent on a real board (or a virtual one through its REPL bridge), or flash MicroPython.

usage:
  deploy.py deploy PORT [--board esp32] [--config ota.json] [--put SRC:DST ...] [--dry-run]
  deploy.py flash PORT --firmware MICROPYTHON.bin [--board esp32] [--dry-run]

deploy  checks the config with the agent's own validation, compiles the agent with mpy-cross,
        and copies with mpremote: /lib/fota/*.mpy, /boot.py, /main.py, the config as /ota.json,
        the board profile as /board.json and every --put file (e.g. a CA as /certs/ca.der).
        PORT is what `mpremote connect` takes: /dev/ttyUSB0, COM3, socket://127.0.0.1:PORT.
flash   erases the flash and writes a MicroPython OTA build (an ESP32_GENERIC-OTA firmware.bin
        from micropython.org) with esptool at the chip's bootloader offset. Everything on the
        board is erased, the file system too: run deploy afterwards.
--dry-run prints the commands instead of running them. Errors: `deploy: message`, exit 1.
"""

import argparse
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


def _check_config(path):
    from fota.app import config
    from fota.core.errors import OTAError

    raw = fsimage.read_config(path)
    try:
        config.validate(json.loads(raw))
    except OTAError as exc:
        raise DeployError("%s: %s" % (path, exc.message)) from None
    return raw


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
    parser = argparse.ArgumentParser(prog="deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deploy", help="copy the agent and its config to a board")
    d.add_argument("port")
    d.add_argument("--board", default="esp32")
    d.add_argument("--config", default=str(TOOLS / "ota.example.json"))
    d.add_argument("--put", action="append", default=[], metavar="SRC:DST")
    d.add_argument("--dry-run", action="store_true")
    f = sub.add_parser("flash", help="erase the flash and write a MicroPython OTA build")
    f.add_argument("port")
    f.add_argument("--firmware", required=True)
    f.add_argument("--board", default="esp32")
    f.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        profile = boards.load(args.board)
    except boards.BoardError as exc:
        raise DeployError(str(exc)) from None
    if args.command == "flash":
        if not Path(args.firmware).is_file():
            raise DeployError("no such firmware file: %s" % args.firmware)
        for cmd in flash_commands(args.port, args.firmware, profile["chip"]):
            _run(cmd, args.dry_run)
        return 0
    raw = _check_config(args.config)
    puts = [fsimage.parse_put(p) for p in args.put]
    files = fsimage.board_files(profile, raw, puts)
    with tempfile.TemporaryDirectory(prefix="fota-deploy-") as staging:
        _run(deploy_commands(args.port, files, staging), args.dry_run)
    if not args.dry_run:
        print(
            "deploy: %d files on %s; reset the board to start the agent" % (len(files), args.port)
        )
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("deploy", main))
