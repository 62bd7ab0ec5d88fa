# ESP-IDF's on-flash binary formats, for the esp32 shim, the virtual board and the tests.
#
# Runs on CPython and on the MicroPython unix port. Everything here follows ESP-IDF's own
# structures so that a flash file made by the shim reads the same in any ESP-IDF tool:
#   - partition table at 0x8000: 32-byte entries (magic 0x50AA), an MD5 row (magic 0xEBEB);
#   - otadata: two 4 KiB sectors, each starting with esp_ota_select_entry_t
#     {uint32 ota_seq; uint8 seq_label[20]; uint32 ota_state; uint32 crc}, where crc is
#     esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4);
#   - app images: esp_image_header_t (magic 0xE9), segments, XOR checksum, optional SHA-256.
#
# The readers, the flash chip and what the esp32 shim needs at run time live in espflash.py (C
# code on a device, kept light for the MicroPython heap) and are re-exported here; this module
# adds the host's side: builders of partition tables, app images and flash files, and the
# emulated second-stage bootloader.

import hashlib
import struct

from espflash import *  # noqa: F403  (all of it is espidf's API too)
from espflash import (  # what the host's side uses, private names included
    _ERR_NAMES,
    CHIP_IDS,
    Flash,
    boot_slot,
    esp_error,
    ota_slots,
    partitions,
    read_otadata,
    select_entry,
    verify_image,
    write_ota_entry,
)

# ESP-IDF's constants. espflash.py (and the esp32 stand-in) hold the same values as private
# const()s, which leave no name on the virtual board's heap, where a device has them in C (a
# test compares the two on CPython).
SECTOR = 4096
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_SIZE = 0xC00
TYPE_APP = 0x00
TYPE_DATA = 0x01
SUBTYPE_FACTORY = 0x00
SUBTYPE_OTA_0 = 0x10
SUBTYPE_DATA_OTA = 0x00
OTA_IMG_NEW = 0x0
OTA_IMG_VALID = 0x2
OTA_IMG_INVALID = 0x3
OTA_IMG_ABORTED = 0x4
ESP_FAIL = -1
ESP_ERR_INVALID_ARG = 0x102
ESP_ERR_INVALID_SIZE = 0x104
ESP_ERR_NOT_FOUND = 0x105
ESP_ERR_OTA_VALIDATE_FAILED = 0x1503
IMAGE_MAGIC = 0xE9
_IMAGE_HEADER = "<BBBBIBBBBHBHH4sB"
_IMAGE_HEADER_LEN = 24
_CHECKSUM_SEED = 0xEF
_ENTRY = "<HBBII16sI"
_ENTRY_MAGIC = 0x50AA
_MD5_MAGIC = 0xEBEB

# The esp_ota_img_states_t values only the bootloader sets.
OTA_IMG_PENDING_VERIFY = 0x1
OTA_IMG_UNDEFINED = 0xFFFFFFFF

# The esp_err_t values of the partition and OTA APIs that no shim operation raises, added to
# the table of names that esp_error() uses.
ESP_ERR_INVALID_STATE = 0x103
ESP_ERR_OTA_PARTITION_CONFLICT = 0x1501
ESP_ERR_OTA_SELECT_INFO_INVALID = 0x1502
_ERR_NAMES[ESP_ERR_INVALID_STATE] = "ESP_ERR_INVALID_STATE"
_ERR_NAMES[ESP_ERR_OTA_PARTITION_CONFLICT] = "ESP_ERR_OTA_PARTITION_CONFLICT"
_ERR_NAMES[ESP_ERR_OTA_SELECT_INFO_INVALID] = "ESP_ERR_OTA_SELECT_INFO_INVALID"

SUBTYPE_ANY = 0xFF
SUBTYPE_DATA_PHY = 0x01
SUBTYPE_DATA_NVS = 0x02
SUBTYPE_DATA_FAT = 0x81

APP_DESC_MAGIC = 0xABCD5432


class _Reader:
    """What espflash's readers use of a Flash (read, readinto, scratch), over a read callback.

    For the host's readers of bytes and callbacks; the device side reads a Flash directly.
    """

    def __init__(self, read, readinto=None):
        self.read = read
        self.readinto = readinto or self._readinto
        self.scratch = bytearray(SECTOR)

    def _readinto(self, addr, buf):
        buf[:] = self.read(addr, len(buf))


# --- partition table ---------------------------------------------------------------------------


def pack_partition_table(entries):
    """entries: (label, type, subtype, offset, size, flags) tuples -> the 0xC00-byte table."""
    table = bytearray(b"\xff" * PARTITION_TABLE_SIZE)
    pos = 0
    for label, ptype, subtype, offset, size, flags in entries:
        if len(label) > 15:
            raise ValueError("partition label too long: " + label)
        struct.pack_into(_ENTRY, table, pos, _ENTRY_MAGIC, ptype, subtype, offset, size,
                         label.encode(), flags)  # fmt: skip
        pos += 32
    digest = hashlib.md5(bytes(table[:pos])).digest()
    struct.pack_into("<H14s16s", table, pos, _MD5_MAGIC, b"\xff" * 14, digest)
    return bytes(table)


def parse_partition_table(raw):
    """The table's entries as (label, type, subtype, offset, size, flags); ValueError if corrupt."""
    base = PARTITION_TABLE_OFFSET
    return partitions(_Reader(lambda addr, n: bytes(raw[addr - base : addr - base + n])))


# --- app images --------------------------------------------------------------------------------


def image_length(read, limit, chip_id, readinto=None):
    """Validate an ESP32 app image as esp_image_verify() does; return its length in bytes.

    read(offset, n) -> bytes reads the image (the partition); limit is the partition size;
    readinto(offset, buf), when given, reads the bulk of the data into a buffer. Raises
    ValueError with the reason when the image is invalid. (espflash.verify_image() is the same
    check on a Flash, for the esp32 shim.)
    """
    return verify_image(_Reader(read, readinto), 0, limit, chip_id)


def app_version(read):
    """The version string of the app descriptor in an image's first segment, or None."""
    desc = read(_IMAGE_HEADER_LEN + 8, 48)
    if struct.unpack_from("<I", desc, 0)[0] != APP_DESC_MAGIC:
        return None
    return desc[16:48].split(b"\x00")[0].decode()


# --- flash files and the bootloader ------------------------------------------------------------


def make_flash(path, size, entries):
    """A blank flash file of `size` bytes (all 0xFF) with the partition table `entries`."""
    with open(path, "wb") as f:
        blank = b"\xff" * SECTOR
        for _ in range(size // SECTOR):
            f.write(blank)
    flash = Flash(path)
    flash.write(PARTITION_TABLE_OFFSET, pack_partition_table(entries))
    flash.close()


def bootloader(flash, chip_id, write=True):
    """ESP-IDF's second-stage bootloader with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.

    Picks the slot from otadata; an image still PENDING_VERIFY at this reset was never confirmed,
    so it is marked ABORTED and the previous slot boots instead; a NEW image becomes
    PENDING_VERIFY. An image that fails validation is skipped for the other slot. Returns
    (partition entry, rolled_back: bool); raises OSError when nothing bootable is left.
    write=False is a dry run: what the next reset would boot, otadata left as it is.
    """
    parts = partitions(flash)
    od, entries = read_otadata(flash, parts)

    def set_state(i, state):
        if write:
            write_ota_entry(flash, od, i, entries[i][0], state)
        entries[i] = (entries[i][0], state, True)

    rolled_back = False
    active = select_entry(entries)
    if active >= 0 and entries[active][1] == OTA_IMG_PENDING_VERIFY:
        set_state(active, OTA_IMG_ABORTED)
        rolled_back = True
        active = select_entry(entries)
    if active >= 0 and entries[active][1] == OTA_IMG_NEW:
        set_state(active, OTA_IMG_PENDING_VERIFY)
    first = boot_slot(parts, entries)
    candidates = [first] + [p for p in ota_slots(parts) if p is not first]
    for part in candidates:
        try:
            verify_image(flash, part[3], part[4], chip_id)
        except ValueError:
            continue
        return part, rolled_back or part is not first
    raise esp_error(ESP_ERR_NOT_FOUND, "no valid app image in any slot")


def make_app_image(version, chip="esp32", size=8192, hash_appended=True, project="fota-app"):
    """A valid ESP32-family app image of about `size` bytes whose app descriptor says `version`.

    Two segments, as the toolchain lays out an app: DROM (starting with the 256-byte
    esp_app_desc_t) and IROM filled with bytes derived from the version, so that different
    versions differ everywhere. Checksum and appended SHA-256 as esptool writes them.
    """
    desc = bytearray(256)
    struct.pack_into("<II", desc, 0, APP_DESC_MAGIC, 0)
    desc[16 : 16 + len(version)] = version.encode()
    desc[48 : 48 + len(project)] = project.encode()
    desc[80:88] = b"00:00:00"
    desc[96:107] = b"Jan  1 2026"
    desc[112:118] = b"v5.2.2"
    drom = bytes(desc) + b"\x00" * 256
    irom_len = max(4, size - _IMAGE_HEADER_LEN - 16 - len(drom) - 16 - 32) & ~3
    seed = hashlib.sha256(version.encode()).digest()
    fill = bytearray()
    counter = 0
    while len(fill) < min(irom_len, SECTOR):
        fill += hashlib.sha256(seed + struct.pack("<I", counter)).digest()
        counter += 1
    irom = bytearray()
    block = 0
    while len(irom) < irom_len:
        irom += fill
        irom[-4:] = struct.pack("<I", block)  # no two sectors alike
        block += 1
    irom = bytes(irom[:irom_len])
    header = struct.pack(_IMAGE_HEADER, IMAGE_MAGIC, 2, 2, 0x20, 0x400D0000 + 0x18,
                         0xEE, 0, 0, 0, CHIP_IDS[chip], 0, 0, 399, b"\x00" * 4,
                         1 if hash_appended else 0)  # fmt: skip
    out = bytearray(header)
    checksum = _CHECKSUM_SEED
    for addr, data in ((0x3F400020, drom), (0x400D0020, irom)):
        out += struct.pack("<II", addr, len(data))
        out += data
        for b in data:
            checksum ^= b
    out += b"\x00" * (15 - len(out) % 16)
    out.append(checksum)
    if hash_appended:
        out += hashlib.sha256(bytes(out)).digest()
    return bytes(out)


_TYPES = {"app": TYPE_APP, "data": TYPE_DATA}
_SUBTYPES = {
    "factory": SUBTYPE_FACTORY,
    "ota": SUBTYPE_DATA_OTA,
    "phy": SUBTYPE_DATA_PHY,
    "nvs": SUBTYPE_DATA_NVS,
    "fat": SUBTYPE_DATA_FAT,
    "spiffs": 0x82,
    "littlefs": 0x83,
}


def profile_entries(profile):
    """Partition table entries from a board profile's rows (ESP-IDF partitions.csv columns)."""
    entries = []
    for label, ptype, subtype, offset, size in profile["partitions"]:
        kind = _TYPES[ptype]
        if subtype.startswith("ota_"):
            code = SUBTYPE_OTA_0 + int(subtype[4:])
        else:
            code = _SUBTYPES[subtype]
        entries.append((label, kind, code, int(offset, 16), int(size, 16), 0))
    return entries


def make_board_flash(path, profile, version=None):
    """A flash for a board profile: partition table written, otadata and slots erased.

    With `version`, ota_0 holds a valid app image of that version and otadata selects it, VALID
    (as after a first flash with esptool and one confirmed boot).
    """
    make_flash(path, int(profile["flash_size"], 16), profile_entries(profile))
    if version is None:
        return
    flash = Flash(path)
    parts = partitions(flash)
    flash.write(ota_slots(parts)[0][3], make_app_image(version, profile["chip"]))
    od, _ = read_otadata(flash, parts)
    write_ota_entry(flash, od, 0, 1, OTA_IMG_VALID)
    flash.close()
