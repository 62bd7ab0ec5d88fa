"""The virtual nRF board (tools/vboard.py --board nrf52840/nrf9160): create, the emulated MCUboot,
boot, inspect, write-flash.

The emulated MCUboot's decisions are tested in-process on a board's flash file (vboard_mcuboot.
boot, as `boot` runs it before each firmware process); the firmware side end to end through the
command line, in subprocesses with timeouts, with a small main.py per test put into storage.
Swap requests are written here as MCUboot's boot_set_pending() lays them out, independently of
the emulator's own trailer code.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import mcuboot_image
import pytest

import boards

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
VBOARD = TOOLS / "vboard.py"
TIMEOUT_S = 90
sys.path.insert(0, str(TOOLS))

import fsimage  # noqa: E402
import mcuimage  # noqa: E402
import vboard_mcuboot  # noqa: E402
import vboard_nrf  # noqa: E402

MAGIC = bytes.fromhex("77c295f360d2ef7f3552500f2cb67980")  # boot_img_magic, BOOT_MAX_ALIGN 8
CONFIG = {
    "cloud": "onenet",
    "server": "http://127.0.0.1:9",
    "allow_http": True,
    "onenet": {"product_id": "p", "device_id": "d", "device_name": "n", "key": "a2V5"},
}


def _vboard(*args, timeout=TIMEOUT_S):
    return subprocess.run(
        [sys.executable, str(VBOARD), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _events(proc):
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """MCUboot images of 1.0.0 and 2.0.0 (hash-only), 2.0.0 signed with a test key, and that
    key: built once per module with imgtool."""
    folder = tmp_path_factory.mktemp("images")
    slot = boards.partition(boards.load("nrf52840"), "image-1")[1]
    key = folder / "key.pem"
    mcuimage.keygen(key, "ecdsa-p256")
    out = {"key": key}
    for name, version, signed in (("v1", "1.0.0", False), ("v2", "2.0.0", False),
                                  ("v2s", "2.0.0", True)):  # fmt: skip
        path = folder / (name + ".bin")
        mcuimage.build(path, version, 40000, slot_size=slot, max_align=8,
                       key=key if signed else None)  # fmt: skip
        out[name] = path.read_bytes()
    return out


def _create(tmp_path, board="nrf52840", version="1.0.0", main=None, key=None, name="board"):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CONFIG))
    argv = ["create", tmp_path / name, "--board", board, "--version", version, "--config", cfg]
    if main is not None:
        src = tmp_path / ("main-%s.py" % name)
        src.write_text(main)
        argv += ["--put", "%s:/main.py" % src]
    if key is not None:
        argv += ["--key", key]
    proc = _vboard(*argv)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / name


def _slot(board, label):
    profile = boards.load(board / "board.json")
    offset, size = boards.partition(profile, label)
    return offset, size


def _write(board, offset, data):
    with open(board / "flash.bin", "r+b") as f:
        f.seek(offset)
        f.write(data)


def _read(board, offset, n):
    with open(board / "flash.bin", "rb") as f:
        f.seek(offset)
        return f.read(n)


def _set_pending(board, image, permanent=False):
    """The new image into image-1, then boot_set_pending(): magic, image_ok for a permanent
    request, swap_info (swap type in the low nibble, image 0), each field padded to 8 with 0xff."""
    offset, size = _slot(board, "image-1")
    _write(board, offset, image)
    _write(board, offset + size - 16, MAGIC)
    if permanent:
        _write(board, offset + size - 24, b"\x01" + b"\xff" * 7)
    _write(board, offset + size - 40, (b"\x03" if permanent else b"\x02") + b"\xff" * 7)


def _confirm(board):
    """boot_set_confirmed(): image_ok in the primary's trailer."""
    offset, size = _slot(board, "image-0")
    _write(board, offset + size - 24, b"\x01" + b"\xff" * 7)


def _mcuboot(board, key=None):
    return vboard_mcuboot.boot(board / "flash.bin", boards.load(board / "board.json"), key)


def _trailers(board):
    slots = vboard_nrf.inspect_board(vboard_nrf.NrfBoard(board))["slots"]
    return {s["label"]: s["trailer"] for s in slots}


# --- create, inspect -----------------------------------------------------------------------------


def test_create_lays_out_mcuboots_slots_and_the_storage(tmp_path):
    board = _create(tmp_path, version="1.2.3")
    profile = boards.load(board / "board.json")
    assert profile == boards.load("nrf52840")
    flash = (board / "flash.bin").read_bytes()
    assert len(flash) == 0x100000
    offset, size = _slot(board, "image-0")
    image = mcuboot_image.check(flash[offset : offset + size])
    assert image.version == (1, 2, 3, 0) and image.signature_type is None
    assert mcuboot_image.trailer(flash[offset : offset + size]) is None  # as `west flash` leaves it
    offset, size = _slot(board, "image-1")
    assert flash[offset : offset + size] == b"\xff" * size
    offset, size = _slot(board, "storage")
    files = dict(fsimage.listing(flash[offset : offset + size]))
    assert "/lib/fota/app/agent.mpy" in files and "/main.py" in files
    assert json.loads(fsimage.read_file(flash[offset : offset + size], "/ota.json")) == CONFIG
    stored = fsimage.read_file(flash[offset : offset + size], "/board.json")
    assert json.loads(stored) == profile
    report = json.loads(_vboard("inspect", board).stdout)
    assert report["next_boot"] == {"swap": "none"}
    primary, secondary = report["slots"]
    assert (primary["version"], primary["valid"], primary["sha256_ok"]) == ("1.2.3", True, True)
    assert primary["trailer"]["magic"] == "unset" and secondary["blank"] is True
    assert {"path": "/flash/ota.json", "size": len(json.dumps(CONFIG))} in report["storage"][
        "files"
    ]


def test_imgtool_verifies_the_primary_slot_of_a_signed_board(tmp_path, images):
    board = _create(tmp_path, key=images["key"])
    assert (board / vboard_nrf.KEY_FILE).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    offset, size = _slot(board, "image-0")
    image = mcuboot_image.check(_read(board, offset, size))
    extracted = tmp_path / "slot0.bin"
    extracted.write_bytes(_read(board, offset, image.end))
    proc = subprocess.run(
        [mcuimage.imgtool(), "verify", "-k", str(images["key"]), str(extracted)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0 and "Image was correctly validated" in proc.stdout, proc.stderr
    assert image.signature_type == "ecdsa"


def test_create_refuses_what_the_board_cannot_hold(tmp_path, images):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CONFIG))
    big = tmp_path / "big.bin"
    mcuimage.build(big, "3.0.0", 0x51000, slot_size=0x100000)
    proc = _vboard("create", tmp_path / "b", "--board", "nrf52840", "--image", big,
                   "--config", cfg)  # fmt: skip
    assert proc.returncode == 1 and "swap-move takes 327680 at most" in proc.stderr
    unsigned = tmp_path / "v1.bin"
    unsigned.write_bytes(images["v1"])
    proc = _vboard("create", tmp_path / "b", "--board", "nrf52840", "--image", unsigned,
                   "--key", images["key"], "--config", cfg)  # fmt: skip
    assert proc.returncode == 1 and "signature missing" in proc.stderr
    proc = _vboard("create", tmp_path / "b", "--board", "esp32", "--version", "1.0.0",
                   "--key", images["key"], "--config", cfg)  # fmt: skip
    assert proc.returncode == 1 and "--key is for MCUboot boards" in proc.stderr
    assert not (tmp_path / "b" / "flash.bin").exists()


# --- the emulated MCUboot ------------------------------------------------------------------------


def test_no_request_boots_the_primary_and_leaves_the_flash_alone(tmp_path):
    board = _create(tmp_path)
    before = (board / "flash.bin").read_bytes()
    result = _mcuboot(board)
    assert result == {"events": [], "version": "1.0.0", "state": "confirmed"}
    assert (board / "flash.bin").read_bytes() == before


def test_a_test_swap_runs_the_new_image_once_and_reverts_it_unconfirmed(tmp_path, images):
    board = _create(tmp_path)
    _set_pending(board, images["v2"])
    assert json.loads(_vboard("inspect", board).stdout)["next_boot"] == {"swap": "test"}
    result = _mcuboot(board)
    assert result["events"] == [{"event": "swap", "type": "test", "from": "1.0.0", "to": "2.0.0"}]
    assert (result["version"], result["state"]) == ("2.0.0", "unconfirmed")
    trailers = _trailers(board)
    assert trailers["image-0"] == {"magic": "good", "swap_type": "test", "image_num": 0,
                                   "copy_done": "set", "image_ok": "unset"}  # fmt: skip
    assert trailers["image-1"]["magic"] == "unset"
    # the old image now sits in image-1, whole
    offset, size = _slot(board, "image-1")
    old = mcuboot_image.check(_read(board, offset, size))
    assert old.version == (1, 0, 0, 0)
    # swap_size: the larger image's bytes (the factory image here)
    primary, _ = _slot(board, "image-0")
    swap_size = int.from_bytes(_read(board, primary + size - 48, 4), "little")
    assert swap_size == max(old.end, len(images["v2"])) == old.end
    # image_ok still unset at the next reset: revert, and the restored image is marked ok
    result = _mcuboot(board)
    assert result["events"] == [
        {"event": "revert", "from": "2.0.0", "to": "1.0.0", "reason": "unconfirmed"}
    ]
    assert (result["version"], result["state"]) == ("1.0.0", "confirmed")
    trailers = _trailers(board)
    assert trailers["image-0"]["image_ok"] == "set" and trailers["image-0"]["swap_type"] == "revert"
    assert _mcuboot(board)["events"] == []  # and it stays


def test_a_confirmed_test_image_stays(tmp_path, images):
    board = _create(tmp_path)
    _set_pending(board, images["v2"])
    assert _mcuboot(board)["state"] == "unconfirmed"
    _confirm(board)
    for _ in range(2):
        result = _mcuboot(board)
        assert result == {"events": [], "version": "2.0.0", "state": "confirmed"}


def test_a_permanent_request_stays_without_a_confirmation(tmp_path, images):
    board = _create(tmp_path)
    _set_pending(board, images["v2"], permanent=True)
    result = _mcuboot(board)
    assert result["events"] == [
        {"event": "swap", "type": "permanent", "from": "1.0.0", "to": "2.0.0"}
    ]
    assert result["state"] == "confirmed"
    assert _trailers(board)["image-0"]["image_ok"] == "set"
    assert _mcuboot(board) == {"events": [], "version": "2.0.0", "state": "confirmed"}


def test_a_secondary_with_a_bad_hash_is_not_swapped_in_and_is_erased(tmp_path, images):
    board = _create(tmp_path)
    bad = bytearray(images["v2"])
    bad[0x200 + 1000] ^= 0x01  # one payload bit
    _set_pending(board, bytes(bad))
    result = _mcuboot(board)
    (event,) = result["events"]
    assert event["event"] == "swap_failed" and event["type"] == "test"
    assert event["reason"].startswith("invalid image: hash mismatch")
    assert (result["version"], result["state"]) == ("1.0.0", "confirmed")
    offset, size = _slot(board, "image-1")
    assert _read(board, offset, size) == b"\xff" * size  # boot_scramble_slot
    assert _mcuboot(board)["events"] == []


def test_a_request_without_an_image_only_loses_its_trailer(tmp_path):
    board = _create(tmp_path)
    _set_pending(board, b"")
    (event,) = _mcuboot(board)["events"]
    assert (event["event"], event["reason"]) == ("swap_failed", "no image")
    assert _trailers(board)["image-1"]["magic"] == "unset"


def test_a_signed_board_swaps_only_images_signed_with_its_key(tmp_path, images):
    board = _create(tmp_path, key=images["key"])
    key = board / vboard_nrf.KEY_FILE
    _set_pending(board, images["v2"])  # hash-only: no signature
    (event,) = _mcuboot(board, key)["events"]
    assert event["reason"] == "invalid image: signature missing"
    _set_pending(board, images["v2s"])
    result = _mcuboot(board, key)
    assert result["events"][0]["event"] == "swap" and result["version"] == "2.0.0"


def test_an_image_too_large_for_swap_move_is_left_pending(tmp_path):
    board = _create(tmp_path)
    offset, size = _slot(board, "image-1")
    big = tmp_path / "big.bin"
    # fits the slot with its trailer (imgtool's check), not swap-move's spare sector
    mcuimage.build(big, "2.0.0", size - 0x1000 - 0x200 - 0x400, slot_size=size, max_align=8)
    _set_pending(board, big.read_bytes())
    (event,) = _mcuboot(board)["events"]
    assert event["event"] == "swap_failed" and event["reason"].startswith("image too large")
    assert _trailers(board)["image-1"]["magic"] == "good"  # MCUboot tries again at each reset


def test_a_bad_primary_with_nothing_to_swap_in_bricks_the_board(tmp_path):
    board = _create(tmp_path)
    offset, _ = _slot(board, "image-0")
    _write(board, offset + 0x300, b"\x00\x00\x00\x00")
    with pytest.raises(vboard_mcuboot.Bricked, match="image-0: hash mismatch"):
        _mcuboot(board)
    proc = _vboard("boot", board, "--timeout", 30)
    assert proc.returncode == 2
    (error,) = _events(proc)
    assert (
        error["event"] == "error"
        and "no bootable image: image-0: hash mismatch" in (error["message"])
    )


# --- the firmware on the board -------------------------------------------------------------------

HEADER_MAIN = """\
import json
import os
import struct
import sys

import machine
import zephyr

area = zephyr.FlashArea(*zephyr.FlashArea.areas["image-0"])
storage = zephyr.FlashArea(*zephyr.FlashArea.areas["storage"])
buf = bytearray(32)
ret = area.readblocks(0, buf)
magic, _, hdr, _, size, _, major, minor, rev, build, _ = struct.unpack("<IIHHIIBBHII", buf)
print(json.dumps({"event": "header", "ret": ret, "magic": magic, "hdr_size": hdr, "size": size,
                  "version": "%d.%d.%d" % (major, minor, rev), "cwd": os.getcwd(),
                  "path": sys.path, "root": os.listdir("/"),
                  "unique_id": hasattr(machine, "unique_id"),
                  "storage_blocks": storage.ioctl(4, 0)}))
"""


@pytest.mark.parametrize("name", ["nrf52840", "nrf9160"])
def test_main_py_reads_the_primary_header_through_flasharea_from_flash(tmp_path, name):
    board = _create(tmp_path, board=name, version="1.4.2", main=HEADER_MAIN)
    proc = _vboard("boot", board, "--timeout", 60)
    events = _events(proc)
    assert proc.returncode == 3, proc.stderr  # main.py returned: a halt
    boot, header, halt = events
    profile = boards.load(name)
    assert boot == {"event": "boot", "boot": 1, "slot": "image-0", "version": "1.4.2",
                    "state": "confirmed", "reset_cause": "power_on",
                    "heap": boards.heap_bytes(profile)}  # fmt: skip
    assert header["ret"] == 0 and header["magic"] == mcuboot_image.IMAGE_MAGIC
    assert (header["hdr_size"], header["size"], header["version"]) == (0x200, 65536, "1.4.2")
    assert header["cwd"] == "/flash" and header["root"] == ["flash"]
    assert header["path"] == ["", ".frozen", "/flash/lib"]
    assert header["unique_id"] is False  # the zephyr port's machine has none
    assert header["storage_blocks"] == boards.partition(profile, "storage")[1] // 4096
    assert halt == {"event": "halt", "boot": 1}


# The firmware's own update, through zephyr.FlashArea as an agent would do it: /flash/app2.bin
# into image-1 block by block, boot_set_pending(0) in its trailer, reset; the new image reports
# its version and halts, unconfirmed.
UPDATE_MAIN = """\
import json
import struct

import machine
import zephyr

MAGIC = bytes.fromhex("77c295f360d2ef7f3552500f2cb67980")


def area(label):
    return zephyr.FlashArea(*zephyr.FlashArea.areas[label])


head = bytearray(32)
area("image-0").readblocks(0, head)
version = "%d.%d.%d" % struct.unpack_from("<BBH", head, 20)
print(json.dumps({"event": "running", "version": version}))
if version == "1.0.0":
    slot = area("image-1")
    blocks = slot.ioctl(4, 0)
    buf = bytearray(4096)
    block = 0
    with open("app2.bin", "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            for i in range(n, 4096):
                buf[i] = 0xFF
            assert slot.writeblocks(block, buf) == 0
            block += 1
    last = blocks - 1
    assert slot.ioctl(6, last) == 0
    assert slot.writeblocks(last, MAGIC, 4096 - 16) == 0
    assert slot.writeblocks(last, b"\\x02" + b"\\xff" * 7, 4096 - 40) == 0
    print(json.dumps({"event": "pending", "blocks": block}))
    machine.reset()
"""


def test_the_firmware_writes_an_update_through_flasharea_and_mcuboot_swaps_it(tmp_path, images):
    app2 = tmp_path / "app2.bin"
    app2.write_bytes(images["v2"])
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CONFIG))
    main = tmp_path / "main.py"
    main.write_text(UPDATE_MAIN)
    board = tmp_path / "board"
    proc = _vboard("create", board, "--board", "nrf52840", "--version", "1.0.0", "--config", cfg,
                   "--put", "%s:/main.py" % main, "--put", "%s:/app2.bin" % app2)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = _vboard("boot", board, "--timeout", 60)
    kinds = [(e["event"], e.get("boot")) for e in _events(proc)]
    assert proc.returncode == 3, proc.stderr
    assert kinds == [("boot", 1), ("running", 1), ("pending", 1), ("reset", 1), ("swap", 2),
                     ("boot", 2), ("running", 2), ("halt", 2)]  # fmt: skip
    events = _events(proc)
    assert events[4] == {"event": "swap", "boot": 2, "type": "test", "from": "1.0.0",
                         "to": "2.0.0"}  # fmt: skip
    assert events[5]["state"] == "unconfirmed" and events[6]["version"] == "2.0.0"
    # not confirmed: the next reset reverts it
    proc = _vboard("boot", board, "--timeout", 60, "--boots", 1)
    events = _events(proc)
    assert events[0] == {"event": "revert", "boot": 1, "from": "2.0.0", "to": "1.0.0",
                         "reason": "unconfirmed"}  # fmt: skip
    assert events[1]["version"] == "1.0.0" and events[1]["state"] == "confirmed"
    state = json.loads((board / "state.json").read_text())
    assert state["version"] == "1.0.0" and state["boots"] == 3


def test_write_flash_puts_an_image_into_the_secondary_slot(tmp_path, images):
    board = _create(tmp_path)
    image = tmp_path / "v2.bin"
    image.write_bytes(images["v2"])
    offset, _ = _slot(board, "image-1")
    proc = _vboard("write-flash", board, hex(offset), image)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(_vboard("inspect", board).stdout)
    assert report["slots"][1]["version"] == "2.0.0" and report["slots"][1]["valid"] is True
    assert report["next_boot"] == {"swap": "none"}  # no trailer: nothing requested


def test_the_zephyr_stand_in_dies_half_way_through_the_kth_flash_operation(tmp_path):
    board = _create(tmp_path)
    offset, _ = _slot(board, "image-1")
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "import zephyr\n"
        "area = zephyr.FlashArea(*zephyr.FlashArea.areas['image-1'])\n"
        "assert area.writeblocks(0, bytes(range(256)) * 16) == 0\n"  # erase 1, program 2
        "assert area.writeblocks(1, b'\\x00' * 4096) == 0\n"  # erase 3, program 4: cut
        "print('survived')\n"
    ) % str(TOOLS / "devices")
    env = dict(os.environ, FOTA_FLASH=str(board / "flash.bin"),
               FOTA_BOARD=str(board / "board.json"), FOTA_POWER_CUT="4")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT_S)  # fmt: skip
    assert proc.returncode == -9 and "survived" not in proc.stdout
    assert _read(board, offset, 4096) == bytes(range(256)) * 16  # done before the cut
    second = _read(board, offset + 4096, 4096)
    assert second[:2048] == b"\x00" * 2048 and second[2048:] == b"\xff" * 2048


POWER_MAIN = """\
import json

with open("log.txt", "a") as f:
    f.write("boot\\n")
with open("log.txt") as f:
    print(json.dumps({"event": "log_lines", "n": len(f.read().split())}))
"""


def test_a_power_cut_in_a_storage_write_reboots_the_board_from_power_on(tmp_path):
    board = _create(tmp_path, main=POWER_MAIN)
    proc = _vboard("boot", board, "--timeout", 60, "--boots", 2,
                   "--power-cut-after-writes", 1)  # fmt: skip
    events = [e for e in _events(proc) if e["event"] != "log"]
    assert proc.returncode == 3, proc.stderr
    kinds = [(e["event"], e["boot"]) for e in events]
    assert kinds[:2] == [("boot", 1), ("power_cut", 1)]
    assert ("log_lines", 1) not in kinds  # the process died in its first flash write
    boot2 = events[kinds.index(("boot", 2))]
    assert boot2["reset_cause"] == "power_on" and boot2["version"] == "1.0.0"
    assert kinds[-2:] == [("log_lines", 2), ("halt", 2)]
    # LittleFS kept its last good state: at most the line of boot 2 is in the file
    assert events[-2]["n"] == 1


def test_fsimage_builds_the_storage_partition_of_an_nrf_board(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CONFIG))
    out = tmp_path / "fs.bin"
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "fsimage.py"), "--board", "nrf9160", "--config", str(cfg),
         "-o", str(out)],
        capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "for the storage partition of nrf9160 (0x50000 bytes)" in proc.stdout
    assert "flash it at 0xa0000" in proc.stdout and "esptool" not in proc.stdout
    image = out.read_bytes()
    assert len(image) == 0x50000
    assert "/lib/fota/app/agent.mpy" in dict(fsimage.listing(image))
