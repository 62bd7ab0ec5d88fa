# The virtual nRF board: `vboard.py create/boot/inspect` for a profile whose slot kind is
# "mcuboot" (boards/nrf52840, boards/nrf9160).
#
# The board's folder holds flash.bin (the chip's whole internal flash in MCUboot's layout: the
# mcuboot partition left erased, image-0 holding an MCUboot image of the factory version with no
# trailer, as `west flash` leaves it, image-1 erased, storage a LittleFS with the agent), board.json
# (the profile), state.json (the last boot), and mcuboot-key.pem when it was created with --key:
# the public half of the key its MCUboot checks signatures with.
#
# At every boot the emulated MCUboot (vboard_mcuboot.py) runs on the flash file, then the firmware
# runs under tools/vboard_rt/vboard_zephyr_runner.py with the zephyr stand-in: storage mounted at
# /flash, cwd /flash, boot.py then main.py from there.

import json
from pathlib import Path

import fsimage
import mcuboot_image
import mcuimage
import vboard_boot
import vboard_mcuboot
from vboard_board import DEVICES, Board, BoardBroken, VBoardError, fs_image, new_folder

import boards

RUNNER = Path(__file__).resolve().parent / "vboard_rt" / "vboard_zephyr_runner.py"
FACTORY_IMAGE_SIZE = 64 * 1024  # payload bytes of the image `create` builds
KEY_FILE = "mcuboot-key.pem"


def is_nrf(profile):
    return profile.get("slot") == "mcuboot"


class NrfBoard(Board):
    def __init__(self, path):
        super().__init__(path)
        if not is_nrf(self.profile):
            raise VBoardError("%s is not an MCUboot board" % path)
        key = self.dir / KEY_FILE
        self.key = key if key.is_file() else None

    def slot(self, data, label):
        offset, size = boards.partition(self.profile, label)
        return memoryview(data)[offset : offset + size]


# --- create --------------------------------------------------------------------------------------


def cmd_create(args):
    try:
        profile = boards.load(args.board)
    except boards.BoardError as exc:
        raise VBoardError(str(exc)) from None
    layout = vboard_mcuboot.Layout(profile)
    out = new_folder(args)
    public = _public_key(args.key) if args.key else None
    image = _factory_image(args, profile, layout)
    fs_offset, fs, count = fs_image(profile, args)

    # Every check passed: now write, the flash through a temporary name.
    flash = bytearray(b"\xff" * int(profile["flash_size"], 16))
    offset, _ = layout.primary
    flash[offset : offset + len(image)] = image
    flash[fs_offset : fs_offset + len(fs)] = fs
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "flash.bin.tmp"
    tmp.write_bytes(flash)
    tmp.replace(out / "flash.bin")
    (out / "board.json").write_text(boards.dumps(profile))
    for stale in ("state.json", "state.json.tmp", KEY_FILE):
        (out / stale).unlink(missing_ok=True)
    if public is not None:
        (out / KEY_FILE).write_bytes(public)
    version = mcuboot_image.parse(image).agent_version
    NrfBoard(out).save_state(running=vboard_mcuboot.PRIMARY, version=version, boots=0)
    print(
        "vboard: %s: %s board (%s), %s holds %s%s, %d files in storage"
        % (out, profile["name"], profile["chip"], vboard_mcuboot.PRIMARY, version,
           " (signed)" if public else "", count)
    )  # fmt: skip
    return 0


def _public_key(path):
    """The PEM of the public half of a key file (private or public PEM)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = mcuimage.public_key(path)
    except mcuimage.McuImageError as exc:
        raise VBoardError("--key %s" % exc) from None
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _factory_image(args, profile, layout):
    """The bytes of the MCUboot image image-0 starts with, checked as the board's MCUboot will."""
    if args.image:
        try:
            data = Path(args.image).read_bytes()
        except OSError as exc:
            raise VBoardError("--image %s: %s" % (args.image, exc.strerror or exc)) from None
        where = "--image %s" % args.image
    elif args.version:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="vboard-img-") as tmp:
            try:
                mcuimage.build(
                    Path(tmp) / "app.bin", args.version, FACTORY_IMAGE_SIZE,
                    slot_size=layout.primary[1], max_align=layout.align, key=args.key,
                )  # fmt: skip
            except mcuimage.McuImageError as exc:
                raise VBoardError(str(exc)) from None
            data = (Path(tmp) / "app.bin").read_bytes()
        where = "the image of --version %s" % args.version
    else:
        raise VBoardError("create needs --version (or --image)")
    key = args.key
    image, error = vboard_mcuboot.check_image(data, key)
    if error is not None:
        raise VBoardError("%s: %s" % (where, error))
    if args.version and args.image:
        try:
            wanted = mcuimage.parse_version(args.version)
        except mcuimage.McuImageError as exc:
            raise VBoardError(str(exc)) from None
        if wanted != image.version:
            raise VBoardError(
                "%s is version %s, not --version %s" % (where, image.agent_version, args.version)
            )
    if image.end > layout.max_image:
        raise VBoardError(
            "%s (%d bytes) does not fit %s: swap-%s takes %d at most"
            % (where, image.end, vboard_mcuboot.PRIMARY, layout.mode, layout.max_image)
        )
    return data[: image.end]


# --- inspect -------------------------------------------------------------------------------------


def inspect_board(board):
    """The board's state as a dict (what `inspect` prints)."""
    data = bytearray(board.flash_path.read_bytes())
    align = board.profile["write_align"]
    trailers = {}
    slots = []
    for label in (vboard_mcuboot.PRIMARY, vboard_mcuboot.SECONDARY):
        view = board.slot(data, label)
        offset, size = boards.partition(board.profile, label)
        entry = {"label": label, "offset": "0x%x" % offset, "size": size}
        entry.update(vboard_mcuboot.describe(view, board.key))
        trailers[label] = vboard_mcuboot.read_trailer(view, align)
        entry["trailer"] = trailers[label]
        slots.append(entry)
    kind = vboard_mcuboot.swap_type(trailers[vboard_mcuboot.PRIMARY], trailers["image-1"])
    offset, size = boards.partition(board.profile, boards.STORAGE_LABEL)
    storage = {"label": boards.STORAGE_LABEL, "offset": "0x%x" % offset, "size": size}
    try:
        files = fsimage.listing(bytes(data[offset : offset + size]))
        storage["files"] = [{"path": "/flash" + path, "size": n} for path, n in files]
    except fsimage.FsImageError as exc:
        storage["files"] = None
        storage["error"] = str(exc)
    state = board.state()
    return {
        "board": board.profile["name"],
        "chip": board.chip,
        "booted": state.get("running"),
        "version": state.get("version"),
        "boots": state.get("boots", 0),
        "signed": board.key is not None,
        "next_boot": {"swap": vboard_mcuboot.SWAP_NAMES[kind]},
        "slots": slots,
        "storage": storage,
    }


def cmd_inspect(args):
    print(json.dumps(inspect_board(NrfBoard(args.dir)), indent=2))
    return 0


# --- boot ----------------------------------------------------------------------------------------


class NrfBootRun(vboard_boot.BootRun):
    runner = RUNNER.stem
    # espflash: its power_cut(), which the zephyr stand-in calls at the cut
    modules = (RUNNER, DEVICES / "zephyr.py", DEVICES / "machine.py", DEVICES / "espflash.py")
    frozen = False  # MicroPython's zephyr port has no ssl

    def board_env(self, slot):
        return {
            "FOTA_FLASH": str(self.board.flash_path.resolve()),
            "FOTA_BOARD": str((self.board.dir / "board.json").resolve()),
            "FOTA_CHIP": self.board.chip,
        }

    def write_parts(self):
        # the profile's [label, offset, size] rows, as the partition table's rows the log reads
        return [(label, None, None, int(off, 16), int(size, 16), 0)
                for label, off, size in self.board.profile["partitions"]]  # fmt: skip

    def bootloader(self, n, cause):
        """Run the emulated MCUboot; emit swap, revert or swap_failed, then boot."""
        board = self.board
        try:
            result = vboard_mcuboot.boot(board.flash_path, board.profile, board.key)
        except vboard_mcuboot.Bricked as exc:
            raise BoardBroken("boot %d: no bootable image: %s" % (n, exc)) from None
        for event in result["events"]:
            record = {"event": event.pop("event"), "boot": n}
            record.update(event)
            self.emit(record)
        self.emit(
            {
                "event": "boot",
                "boot": n,
                "slot": vboard_mcuboot.PRIMARY,
                "version": result["version"],
                "state": result["state"],
                "reset_cause": vboard_boot.CAUSE_NAMES[cause],
                "heap": self.budget,
            }
        )
        total = board.state().get("boots", 0) + 1
        board.save_state(running=vboard_mcuboot.PRIMARY, version=result["version"], boots=total)
        return vboard_mcuboot.PRIMARY


def cmd_boot(args):
    if args.repl is not None:
        raise VBoardError("an nRF board has no console server yet: use `boot` without --repl")
    return vboard_boot.cmd_boot(args, NrfBoard, NrfBootRun)


# --- which board ---------------------------------------------------------------------------------


def _profile_of(args):
    if args.command == "create":
        try:
            return boards.load(args.board)
        except boards.BoardError:
            return {}  # the ESP32 command says what is wrong
    try:
        return json.loads((Path(args.dir) / "board.json").read_text())
    except (OSError, ValueError):
        return {}


def by_board(esp32_command, nrf_command):
    """A command that runs nrf_command for an MCUboot board, else esp32_command."""

    def run(args):
        if is_nrf(_profile_of(args)):
            return nrf_command(args)
        if getattr(args, "key", None):
            raise VBoardError("--key is for MCUboot boards (--board nrf52840, nrf9160)")
        return esp32_command(args)

    return run
