"""The virtual board: the real firmware on the MicroPython unix port, over ESP-IDF's flash formats
(or, for --board nrf52840 and nrf9160, MCUboot's: tools/vboard_nrf.py).

usage:
  vboard.py create DIR --board esp32 --version 1.0.0 --config CFG.json [--put SRC:DST ...]
                       [--image APP.bin] [--force] [--key KEY.pem (MCUboot boards)]
  vboard.py boot DIR [--boots N] [--heap 64k] [--timeout S] [--runtime i386|x64]
                     [--power-cut-after-writes K [--power-cut-boot B]] [--repl PORT]
                     [--ready-event] [--trace-writes FILE]
  vboard.py repl DIR [--boots N] [--heap 64k] [--timeout S] [--runtime i386|x64]
  vboard.py inspect DIR
  vboard.py write-flash DIR ADDRESS FILE

DIR holds flash.bin (the whole SPI flash: partition table at 0x8000, otadata with CRCs, ESP32 app
images, a LittleFS `vfs` partition), board.json (the profile) and state.json (the slot that ran
last). `boot` prints one JSON object per line on stdout:

  {"event": "boot", "boot": n, "slot", "version", "state", "reset_cause", "heap"}
  {"event": "rollback", "boot": n, "from", "to", "reason": "unconfirmed" | "invalid image"}
  {"event": "reset", "boot": n, "cause": "soft" | "deepsleep" | "watchdog" | "power_on"}
  {"event": "crash", "boot": n, "exit": status, "stderr": [last lines]}  (then a watchdog reset)
  {"event": "power_cut", "boot": n, "after_writes": K, "op": "erase" | "program", "label",
      "offset", "size"}    the operation the cut hit (offset in the partition); then power-on
  {"event": "log", "boot": n, "line": "..."[, "stream": "stderr" | "vboard"]}  (other output)
  {"event": "halt", "boot": n}             main.py returned: the board sits at its REPL; stop
  {"event": "timeout", "boot": n, "seconds": S}                          stop
  {"event": "stop", "boot": n, "reason": "boots"}                        --boots N reached
  {"event": "error", "message": "..."}     the board broke (no bootable slot, corrupt flash)
  {"event": "repl", "port": PORT, "url": "socket://127.0.0.1:PORT"}    with --repl (first)
  {"event": "repl", "device": "/dev/pts/N"}                  `repl`: the console's pty (first)
  {"event": "ready", "boot": n, "free": F, "alloc": A}   with --ready-event: the heap free and in
      use (the emulation's share) after a collection, as boot.py starts
and passes every JSON line of the firmware with an "event" key through ("boot" added); after the
firmware's {"event": "idle"} it stops the board. Exit status: 0 when the agent went idle (or
--boots N ran out), 1 for a usage error, 2 when the board or this tool broke, 3 when the board
stopped without going idle: main.py returned (a halt: the agent stopped, e.g. on a config
error) or --timeout ran out.

The firmware runs in `micropython -X heapsize=...` (tools/vboard_rt/vboard_runner.py), by default
on the 32-bit build (tools/runtimes.py: an ESP32's object sizes, so its heap is a board's), with the
vfs partition mounted as / and the device stand-ins of tools/devices as its esp32/machine/network
modules; the app gets the board's heap budget (--heap) free when boot.py starts.
--power-cut-after-writes K: the K-th flash erase or program of boot B (counted in the esp32 shim,
the file system's writes included, since the vfs sits on esp32.Partition as on a board) lands
half-way and the process is killed; the board then boots again from power-on.
--trace-writes FILE appends one JSON line per flash erase/program of every boot to FILE
(tools/vboard_writes.py: boot, write number K, op, partition label, offset, size): how to find
the K of a phase (the download's ota_1 writes, the journal's and state file's vfs writes, the
activation's and confirmation's otadata writes).
--repl PORT and `repl` serve the board's console to mpremote (tools/vboard_repl.py): on
socket://127.0.0.1:PORT, or on a pty that `mpremote connect /dev/pts/N repl` drives like a USB
cable; machine.reset() boots the board again with the client still connected.

An nRF board (a profile with "slot": "mcuboot") keeps the chip's internal flash in MCUboot's
layout: an MCUboot image of VERSION in image-0, image-1 empty, the agent in the LittleFS
`storage` partition, which the firmware sees at /flash. At every boot an emulated MCUboot
(tools/vboard_mcuboot.py) reads both slots' trailers, swaps, reverts or refuses as MCUboot does,
and emits, before the boot event (whose "slot" is always image-0 and "state" "confirmed" or
"unconfirmed"):
  {"event": "swap", "boot": n, "type": "test" | "permanent", "from": V0, "to": V1}
  {"event": "revert", "boot": n, "from": V1, "to": V0, "reason": "unconfirmed"}
  {"event": "swap_failed", "boot": n, "type", "version", "reason"}   (image-1 not swapped in)
`inspect` shows both slots' versions, hash verdicts and trailers; --key makes the factory image
signed and the board's MCUboot refuse images without a good signature of that key.
"""

import signal
import sys

import cli
import runtimes
import vboard_board
import vboard_boot
import vboard_nrf
from vboard_board import BoardBroken
from vboard_boot import DEFAULT_BOOTS, DEFAULT_RUNTIME, DEFAULT_TIMEOUT_S, Emitter
from vboard_nrf import by_board

REPL_BOOTS = 1000


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
    p.add_argument(
        "--key", metavar="KEY.pem", help="MCUboot boards: sign with KEY, check signatures at boot"
    )
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
        "--trace-writes",
        metavar="FILE",
        help="append every flash erase/program (boot, K, partition, offset) to FILE as JSON",
    )
    p.add_argument(
        "--repl",
        type=int,
        metavar="PORT",
        help="serve the raw REPL on socket://127.0.0.1:PORT for mpremote",
    )
    p.add_argument(
        "--ready-event",
        action="store_true",
        help="emit the runner's heap figures as boot.py starts (a ready event per boot)",
    )
    p = sub.add_parser(
        "repl", help="boot the board with its console on a pty: mpremote connect /dev/pts/N"
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument(
        "--boots",
        type=int,
        default=REPL_BOOTS,
        metavar="N",
        help="stop after N boots (default %d: a session resets at will)" % REPL_BOOTS,
    )
    p.add_argument("--heap", metavar="SIZE", help="the app's heap (default: the board's budget)")
    p.add_argument(
        "--runtime",
        choices=runtimes.NAMES,
        default=DEFAULT_RUNTIME,
        help="MicroPython build: i386 (default) or x64",
    )
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds (default none)")
    # `boot`'s options that a console session does not take
    p.set_defaults(
        repl="pty",
        power_cut_after_writes=None,
        power_cut_boot=1,
        ready_event=False,
        trace_writes=None,
    )
    p = sub.add_parser("inspect", help="JSON: slots, versions, otadata states, vfs files")
    p.add_argument("dir", metavar="DIR")
    p = sub.add_parser("write-flash", help="write FILE at ADDRESS, like esptool write-flash")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("file", metavar="FILE")
    return parser


COMMANDS = {
    "create": by_board(vboard_board.cmd_create, vboard_nrf.cmd_create),
    "boot": by_board(vboard_boot.cmd_boot, vboard_nrf.cmd_boot),
    "repl": by_board(vboard_boot.cmd_boot, vboard_nrf.cmd_boot),  # with args.repl == "pty"
    "inspect": by_board(vboard_board.cmd_inspect, vboard_nrf.cmd_inspect),
    "write-flash": vboard_board.cmd_write_flash,
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
    sys.exit(cli.run("vboard", main))
