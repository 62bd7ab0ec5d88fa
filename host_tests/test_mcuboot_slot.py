# The MCUboot slot and the Zephyr board adapter (fota.slots.mcuboot) over an in-memory block
# device with zephyr.FlashArea's interface and NOR flash's rules, driven by the download engine
# with real imgtool images (tools/mcuimage.py), read back with tools/mcuboot_image.py: the swap
# request as MCUboot reads it, confirm, rollback, every broken image refused before a trailer is
# written, resume after a power cut, no allocation per chunk, and the board chosen by its profile.

import hashlib
import json
import os
import sys

from dual import fails, is_micropython, raises, repo_path, rmtree, tmpdir
from fakeclock import FakeClock
from fakehttp import FakeClient
from heaplock import LockedDownloader

from fota.core import errors
from fota.core.download import Downloader
from fota.core.journal import Journal
from fota.core.offer import Offer
from fota.slots.mcuboot import Board, McubootSlot

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "4m"
MICROPYTHON_TIMEOUT = 120

SLOT = 0x20000  # 32 sectors of 4096 bytes
_IMAGES = repo_path(".build/mcuboot-test")
# name: mcuimage.build() options. Built on CPython when this module is imported (pytest imports
# it before any test runs, also before the MicroPython runs, which read the files).
_BUILDS = {
    "new": {"version": "2.1.0+3", "size": 60000},
    "old": {"version": "1.0.0", "size": 50000},
    "signed": {"version": "2.2.0", "size": 30000, "sign": True},
    "pad-test": {"version": "2.1.0+3", "size": 60000, "slot_size": SLOT, "align": 8,
                 "max_align": 8, "test": True},
    "pad-perm": {"version": "2.1.0+3", "size": 60000, "slot_size": SLOT, "align": 8,
                 "max_align": 8, "confirm": True},
}  # fmt: skip


def _prepare():
    sys.path.insert(0, repo_path("tools"))
    import mcuimage

    try:
        os.mkdir(repo_path(".build"))
    except OSError:
        pass
    for name, opts in _BUILDS.items():
        path = "%s/%s.bin" % (_IMAGES, name)
        if not os.path.exists(path):
            opts = dict(opts)
            mcuimage.build(path, opts.pop("version"), opts.pop("size"), **opts)


if not is_micropython():
    _prepare()


def image(name):
    with open("%s/%s.bin" % (_IMAGES, name), "rb") as f:
        return f.read()


MAGIC = bytes.fromhex("77c295f360d2ef7f3552500f2cb67980")  # BOOT_MAX_ALIGN 8


def trailer(mem):
    """tools/mcuboot_image.trailer() of a slot's bytes; on MicroPython (where that module's
    struct.Struct is missing) the same reading, with write_align 8."""
    if not is_micropython():
        import mcuboot_image

        return mcuboot_image.trailer(bytes(mem))
    if bytes(mem[-16:]) != MAGIC:
        return None

    def flag(value):
        return "set" if value == 1 else "unset" if value == 0xFF else "0x%02x" % value

    return {"magic": "good", "image_ok": flag(mem[-24]), "copy_done": flag(mem[-32]),
            "swap_info": flag(mem[-40])}  # fmt: skip


class PowerCut(Exception):
    pass


class Flash:
    """A zephyr.FlashArea stand-in over a bytearray, with NOR flash's rules: a write only clears
    bits, at `align`-byte offsets and lengths; writeblocks(block, buf) erases ONE block and writes
    all of buf; every call returns 0 or a negative errno and never raises (as the port does)."""

    def __init__(self, size=SLOT, align=4):
        self.mem = bytearray(b"\xff" * size)
        self.align = align
        self.erases = [0] * (size // 4096)
        self.writes = 0
        self.fail_block = None  # erasing or writing this block returns -5 (EIO)
        self.cut_after = None  # writeblocks calls before the power goes

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.mem) // 4096
        if op == 5:
            return 4096
        if op == 6:
            if not 0 <= arg < len(self.erases):
                return -22
            if arg == self.fail_block:
                return -5
            mem = self.mem
            for i in range(arg * 4096, arg * 4096 + 4096):
                mem[i] = 0xFF
            self.erases[arg] += 1
            return 0
        return -22

    def readblocks(self, block, buf, off=0):
        pos = block * 4096 + off
        if pos < 0 or pos + len(buf) > len(self.mem):
            return -22
        buf[0 : len(buf)] = memoryview(self.mem)[pos : pos + len(buf)]
        return 0

    def writeblocks(self, block, buf, off=None):
        if self.cut_after is not None:
            if self.cut_after == 0:
                raise PowerCut()
            self.cut_after -= 1
        if off is None:
            rc = self.ioctl(6, block)
            if rc:
                return rc
            off = 0
        pos = block * 4096 + off
        n = len(buf)
        if pos % self.align or n % self.align or pos + n > len(self.mem):
            return -22
        if block == self.fail_block:
            return -5
        mem = self.mem
        for i in range(n):
            mem[pos + i] &= buf[i]
        self.writes += 1
        return 0

    def put(self, data, at=0):
        """Program bytes as a programmer would (erase first)."""
        for i in range(len(data)):
            self.mem[at + i] = data[i]


class Rig:
    def __init__(self, name="new", data=None, permanent=False, swap="move", **options):
        self.tmp = tmpdir()
        self.image = data if data is not None else image(name)
        self.flash = Flash()
        self.slot = McubootSlot(self.flash, "image-1", swap, 8, permanent)
        self.client = FakeClient(self.image)
        self.offer = Offer(
            "http://fw.example/app.bin",
            len(self.image),
            sha256=hashlib.sha256(self.image).digest().hex(),
        )
        self.options = options
        options.setdefault("window", 16384)

    def downloader(self, engine=Downloader):
        return engine(
            self.client, self.slot, Journal(self.tmp + "/fota.journal"), FakeClock(),
            chunk=4096, **self.options,
        )  # fmt: skip

    def run(self):
        return self.downloader().run(self.offer)

    def close(self):
        rmtree(self.tmp)


def _blocks(n):
    return (n + 4095) // 4096


def test_a_download_lands_in_the_secondary_slot_and_requests_a_test_swap():
    rig = Rig(journal_blocks=4)
    try:
        assert rig.run().version == "2.1.0+3"
        mem = rig.flash.mem
        assert mem[: len(rig.image)] == rig.image
        n = _blocks(len(rig.image))
        # each block of the image erased once, the trailer's page once, nothing else
        assert rig.flash.erases == [1] * n + [0] * (31 - n) + [1]
        assert trailer(mem) == {"magic": "good", "image_ok": "unset", "copy_done": "unset",
                                "swap_info": "0x02"}  # fmt: skip
        # the bytes imgtool --test lays out (imgtool leaves swap_info to the bootloader)
        padded = image("pad-test")
        assert mem[SLOT - 40] == 0x02 and padded[SLOT - 40] == 0xFF
        assert mem[SLOT - 39 :] == padded[SLOT - 39 :]
    finally:
        rig.close()


def test_a_permanent_request_sets_image_ok_as_imgtool_confirm_does():
    rig = Rig(permanent=True)
    try:
        rig.run()
        mem = rig.flash.mem
        assert trailer(mem) == {"magic": "good", "image_ok": "set", "copy_done": "unset",
                                "swap_info": "0x03"}  # fmt: skip
        assert mem[SLOT - 39 :] == image("pad-perm")[SLOT - 39 :]
    finally:
        rig.close()


def test_an_old_trailer_is_erased_before_the_new_request():
    rig = Rig()
    try:
        rig.flash.put(b"\x01" * 64, SLOT - 64)  # what a finished swap may leave
        rig.run()
        assert trailer(rig.flash.mem)["swap_info"] == "0x02"
        assert rig.flash.erases[-1] == 1
    finally:
        rig.close()


def test_a_pending_request_goes_before_the_first_write_of_another_image():
    # activated, but never reset: MCUboot must not swap in the next, half-written image
    rig = Rig(permanent=True)
    try:
        rig.run()
        assert trailer(rig.flash.mem)["swap_info"] == "0x03"
        rig.flash.cut_after = 2  # the next download dies after two blocks
        other = Rig(data=image("signed"))
        rig.client, rig.offer = other.client, other.offer
        other.close()
        raises(PowerCut, rig.run)
        assert trailer(rig.flash.mem) is None
    finally:
        rig.close()


def _protected(data):
    # the image with a protected TLV area (a security counter, 0x50) and its SHA-256 redone
    import struct

    hdr, size = struct.unpack_from("<H", data, 8)[0], struct.unpack_from("<I", data, 12)[0]
    body = bytearray(data[: hdr + size])
    prot = struct.pack("<HHHHI", 0x6908, 12, 0x50, 4, 7)
    body[10:12] = struct.pack("<H", len(prot))
    body += prot
    digest = hashlib.sha256(bytes(body)).digest()
    return bytes(body) + struct.pack("<HHHH", 0x6907, 40, 0x10, 32) + digest


def test_signed_images_and_protected_tlvs_check_out():
    for data, version in ((image("signed"), "2.2.0"), (_protected(image("new")), "2.1.0+3")):
        rig = Rig(data=data)
        try:
            assert rig.run().version == version
            assert trailer(rig.flash.mem)["swap_info"] == "0x02"
        finally:
            rig.close()


def _spoilt():
    import struct

    good = image("new")
    hdr, size = struct.unpack_from("<H", good, 8)[0], struct.unpack_from("<I", good, 12)[0]
    tlv = hdr + size

    def patch(data, at, raw):
        out = bytearray(data)
        out[at : at + len(raw)] = raw
        return bytes(out)

    prot = _protected(good)
    return (
        ("header magic", patch(good, 0, b"\x3d\xb8\xf3\x97")),
        ("ih_hdr_size", patch(good, 8, b"\x10\x00")),
        ("ih_img_size", patch(good, 12, struct.pack("<I", size + 4096))),
        ("TLV info magic", patch(good, tlv, b"\x08\x69")),
        ("protected TLV info", patch(prot, tlv, b"\x07\x69")),
        ("no SHA-256 TLV", patch(good, tlv + 4, b"\x11\x00")),
        ("SHA-256 TLV does not match", patch(good, 4000, bytes([good[4000] ^ 1]))),
        ("the image is", good[:-1]),  # truncated
        ("the image is", good + b"\xff" * 16),  # extra bytes
    )


def test_every_broken_image_is_refused_and_no_swap_is_requested():
    for field, data in _spoilt():
        rig = Rig(data=data)
        try:
            exc = fails(errors.VERIFY, rig.run)
            assert field in exc.message, (field, exc.message)
            assert trailer(rig.flash.mem) is None, field
            assert rig.flash.erases[-1] == 0, field
        finally:
            rig.close()


def test_the_room_is_the_slot_minus_mcuboots_trailer():
    # move: 32 * 3 * 8 + 4 * 8 + 16 = 816 bytes, a whole sector, and the spare sector
    assert McubootSlot(Flash(), swap="move").capacity == SLOT - 8192
    # scratch: the trailer only (its first sector has room for the scratch area's own)
    assert McubootSlot(Flash(), swap="scratch").capacity == SLOT - 816
    # an nRF52840's 472 KB slots: 118 sectors -> 2880 bytes of trailer
    nrf = Flash(0x76000)
    assert McubootSlot(nrf, swap="move").capacity == 0x76000 - 8192
    assert McubootSlot(nrf, swap="scratch").capacity == 0x76000 - 2880
    # a smaller primary: its spare sector decides
    assert McubootSlot(Flash(), swap="move", other=SLOT - 4096).capacity == SLOT - 12288


def test_an_image_over_the_room_is_refused_before_anything_is_erased():
    rig = Rig()
    try:
        big = rig.slot.capacity + 1
        rig.offer.size = big
        fails(errors.NO_SPACE, rig.run)  # the offer's own check, against capacity
        exc = fails(errors.NO_SPACE, rig.slot.begin, big)
        assert "does not fit image-1" in exc.message
        assert sum(rig.flash.erases) == 0 and rig.flash.writes == 0
    finally:
        rig.close()


def test_a_power_cut_resumes_from_the_journal_and_writes_no_block_twice():
    for writes in (3, 9):
        rig = Rig(journal_blocks=4)
        try:
            rig.flash.cut_after = writes
            raises(PowerCut, rig.run)
            rig.flash.cut_after = None
            result = rig.run()  # the next boot: a new engine, the same offer
            committed = writes // 4 * 4 * 4096
            assert result.resumed_from == committed
            assert rig.flash.mem[: len(rig.image)] == rig.image
            erases = rig.flash.erases[: _blocks(len(rig.image))]
            assert erases[: committed // 4096] == [1] * (committed // 4096)
            assert max(erases) <= 2 and min(erases) == 1
            assert trailer(rig.flash.mem)["magic"] == "good"
        finally:
            rig.close()


def test_the_steady_state_allocates_nothing_with_the_heap_locked():
    rig = Rig(window=131072)
    try:
        dl = rig.downloader(LockedDownloader)
        assert dl.run(rig.offer).version == "2.1.0+3"
        if is_micropython():
            assert dl.pumped_locked >= len(rig.image) * 8 // 10
    finally:
        rig.close()


def test_flash_failures_are_flash_errors_that_name_the_block():
    rig = Rig()
    try:
        rig.flash.fail_block = 5
        exc = fails(errors.FLASH, rig.run)
        assert "block 5 of image-1" in exc.message and "-5" in exc.message, exc.message
    finally:
        rig.close()

    class Broken(Flash):
        def readblocks(self, block, buf, off=0):
            raise OSError(5)

    exc = fails(errors.FLASH, McubootSlot(Broken()).read, 0, bytearray(4096))
    assert "reading image-1" in exc.message


# -- the board: a zephyr module with FlashArea over two Flash objects


class _Areas:
    def __init__(self, devices):
        self.devices = devices
        self.areas = {}
        for i, label in enumerate(sorted(devices)):
            self.areas[label] = (i, 4096)

    def __call__(self, ident, block):
        for label in self.areas:
            if self.areas[label][0] == ident:
                return self.devices[label]
        raise ValueError("unable to open flash area")


class _Zephyr:
    pass


def zephyr(primary, secondary):
    module = _Zephyr()
    module.FlashArea = _Areas({"image-0": primary, "image-1": secondary})
    sys.modules["zephyr"] = module


def _swapped(version_image):
    """A primary slot as a test swap leaves it: the image, magic, copy_done set, image_ok not."""
    flash = Flash()
    flash.put(version_image)
    flash.put(b"\x01" + b"\xff" * 7, SLOT - 32)  # copy_done
    flash.put(MAGIC, SLOT - 16)
    return flash


def test_confirm_sets_image_ok_in_the_primary_slot_once():
    primary = _swapped(image("new"))
    zephyr(primary, Flash())
    try:
        board = Board({"swap": "move", "write_align": 8})
        assert board.running_version() == "2.1.0+3" and board.running_label() == "image-0"
        board.confirm()
        assert trailer(primary.mem) == {"magic": "good", "image_ok": "set", "copy_done": "set",
                                        "swap_info": "unset"}  # fmt: skip
        writes = primary.writes
        board.confirm()  # already confirmed: nothing written
        assert primary.writes == writes
        bare = Flash()  # flashed by a programmer: no trailer, nothing to confirm
        bare.put(image("old"))
        zephyr(bare, Flash())
        board.confirm()
        assert bare.writes == 0 and trailer(bare.mem) is None
    finally:
        sys.modules.pop("zephyr", None)


def test_rollback_asks_for_a_permanent_swap_of_the_previous_image():
    secondary = Flash()
    secondary.put(image("old"))  # where a swap leaves the image it replaced
    zephyr(_swapped(image("new")), secondary)
    try:
        board = Board({"swap": "move", "write_align": 8})
        assert board.next_boot() == "image-0"
        assert board.rollback() == "1.0.0"
        assert trailer(secondary.mem)["image_ok"] == "set"
        assert trailer(secondary.mem)["swap_info"] == "0x03"
        assert board.next_boot() == "image-1"
        zephyr(_swapped(image("new")), Flash())  # nothing to go back to
        fails(errors.VERIFY, board.rollback)
    finally:
        sys.modules.pop("zephyr", None)


def test_a_board_profile_is_checked_at_start():
    fails(errors.CONFIG, Board, {"swap": "offset"})
    fails(errors.CONFIG, Board, {"write_align": 4})
    exc = fails(errors.CONFIG, Board, {"wifi": {"ssid": "x"}})
    assert "wifi" in exc.message
    assert Board({}).network_up(None) is True


# -- board selection and the agent's root

_CONFIG = {
    "cloud": "onenet",
    "server": "http://127.0.0.1:9",
    "allow_http": True,
    "version": "2.0.0",
    "onenet": {"product_id": "123", "device_id": "456", "key": "a2V5"},
}


def _root(profile, config=None):
    root = tmpdir()
    with open(root + "/ota.json", "w") as f:
        f.write(json.dumps(config or _CONFIG))
    if profile is not None:
        with open(root + "/board.json", "w") as f:
            f.write(json.dumps(profile))
    return root


def test_the_profile_picks_the_board_module_and_the_check_loads_only_that_one():
    from fota.app import agent, boot, cycle

    mcu = {"slot": "mcuboot", "chip": "nrf52840", "swap": "scratch", "write_align": 8}
    for profile, module in (
        (mcu, "fota.slots.mcuboot"),
        ({"chip": "esp32", "slot": "esp32-ota"}, "fota.slots.esp32slot"),
        (None, "fota.slots.esp32slot"),
    ):
        root = _root(profile)
        try:
            cfg = boot.run(None, root)
            assert cfg["board"] == module and cfg["root"] == root + "/" and "slot" not in cfg
            if profile is mcu:
                assert cfg["swap"] == "scratch" and cfg["write_align"] == 8
            agent.release()
            fails(errors.DOWNLOAD, cycle.poll, cfg, FakeClock())  # nothing listens on port 9
            loaded = [m for m in sys.modules if m.startswith("fota.slots.")]
            assert loaded == [module], loaded
        finally:
            agent.release()
            rmtree(root)


def test_a_wifi_section_is_refused_on_a_zephyr_board_at_start():
    from fota.app import boot

    config = dict(_CONFIG)
    config["wifi"] = {"ssid": "lab"}
    root = _root({"slot": "mcuboot"}, config)
    try:
        exc = fails(errors.CONFIG, boot.run, None, root)
        assert exc.message.startswith("ota.json: wifi:")
    finally:
        rmtree(root)


def test_the_agent_finds_its_files_where_it_runs():
    from fota.app import boot

    root = _root({"slot": "mcuboot", "swap": "move", "write_align": 8})
    here = os.getcwd()
    try:
        os.chdir(root)  # as Zephyr's _boot.py changes into /flash
        cfg = boot.run()
        assert cfg["root"] == os.getcwd() + "/" and cfg["board"] == "fota.slots.mcuboot"
        assert boot.home("/") == "/" and boot.home("/flash") == "/flash/"
    finally:
        os.chdir(here)
        rmtree(root)


def test_mcuboot_permanent_is_a_checked_option():
    from fota.app import config

    cfg = dict(_CONFIG)
    assert "mcuboot_permanent" not in config.validate(dict(cfg))
    cfg["mcuboot_permanent"] = True
    assert config.validate(cfg)["mcuboot_permanent"] is True
    cfg["mcuboot_permanent"] = "yes"
    fails(errors.CONFIG, config.validate, cfg)
    assert Board({"mcuboot_permanent": True}).permanent is True


def test_the_repl_api_works_through_the_mcuboot_board():
    from fota import ota

    secondary = Flash()
    secondary.put(image("old"))
    zephyr(_swapped(image("new")), secondary)
    root = _root({"slot": "mcuboot", "swap": "move", "write_align": 8})
    try:
        info = ota.status(root)
        assert info["running"] == "image-0" and info["version"] == "2.1.0+3"
        assert info["next_boot"] == "image-0"
        assert ota.rollback(root) == "1.0.0"
        assert ota.status(root)["next_boot"] == "image-1"
        assert ota.status(root)["pending"]["target"] == "1.0.0"
    finally:
        sys.modules.pop("zephyr", None)
        rmtree(root)
