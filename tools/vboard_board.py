# The virtual board's folder and flash: what `vboard.py create`, `inspect` and `write-flash` do.
#
# A board is a folder with flash.bin (the whole SPI flash in ESP-IDF's formats, from
# tools/devices/espidf.py), board.json (its profile) and state.json (the slot that ran last).
# tools/vboard.py is the command line; the boot itself is tools/vboard_boot.py.

import json
import sys
from pathlib import Path

import appimage
import cli
import fsimage

import boards

DEVICES = Path(__file__).resolve().parent / "devices"
sys.path.insert(0, str(DEVICES))
import espidf  # noqa: E402  (the ESP-IDF formats, shared with the esp32 stand-in)

APP_IMAGE_SIZE = 64 * 1024
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
        self.chip_id = espidf.CHIP_IDS.get(self.chip)  # None: not an ESP32 (vboard_nrf.py)
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


def slot_version(flash, part):
    return espidf.app_version(lambda off, n: flash.read(part[3] + off, n))


def entry_state(parts, entries, part):
    """The otadata state name of the entry that selects `part`, or UNDEFINED."""
    slots = espidf.ota_slots(parts)
    active = espidf.select_entry(entries)
    if active >= 0 and slots and slots[(entries[active][0] - 1) % len(slots)] == part:
        return STATE_NAMES.get(entries[active][1], "0x%x" % entries[active][1])
    return "UNDEFINED"


# --- create --------------------------------------------------------------------------------------


def new_folder(args):
    """The folder `create` makes a board in: refused when it holds one, unless --force."""
    out = Path(args.dir)
    if out.exists() and not out.is_dir():
        raise VBoardError("%s exists and is not a directory" % out)
    if (out / "flash.bin").exists() or (out / "board.json").exists():
        if not args.force:
            raise VBoardError("%s already holds a board (--force replaces it)" % out)
    return out


def fs_image(profile, args):
    """(offset, LittleFS image, number of files) of the board's file system partition: the
    agent, --config as ota.json, the profile as board.json and the --put files."""
    try:
        config = fsimage.read_config(args.config)
        puts = [fsimage.parse_put(p) for p in args.put]
        offset, size = boards.partition(profile, boards.fs_label(profile))
        files = fsimage.board_files(profile, config, puts)
        return offset, fsimage.build(size, files), len(files)
    except fsimage.FsImageError as exc:
        raise VBoardError(str(exc)) from None


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
    out = new_folder(args)
    vfs_offset, image, count = fs_image(profile, args)

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
        % (out, profile["name"], profile["chip"], slot[0], version, count)
    )
    return 0


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
