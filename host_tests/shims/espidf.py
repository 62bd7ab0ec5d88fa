# ESP-IDF's on-flash binary formats, for the esp32 shim, the virtual board and the tests.
#
# Runs on CPython and on the MicroPython unix port. Everything here follows ESP-IDF's own
# structures so that a flash file made by the shim reads the same in any ESP-IDF tool:
#   - partition table at 0x8000: 32-byte entries (magic 0x50AA), an MD5 row (magic 0xEBEB);
#   - otadata: two 4 KiB sectors, each starting with esp_ota_select_entry_t
#     {uint32 ota_seq; uint8 seq_label[20]; uint32 ota_state; uint32 crc}, where crc is
#     esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4);
#   - app images: esp_image_header_t (magic 0xE9), segments, XOR checksum, optional SHA-256.

import binascii
import hashlib
import struct
import sys

SECTOR = 4096
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_SIZE = 0xC00

TYPE_APP = 0x00
TYPE_DATA = 0x01
SUBTYPE_FACTORY = 0x00
SUBTYPE_OTA_0 = 0x10
SUBTYPE_ANY = 0xFF
SUBTYPE_DATA_OTA = 0x00
SUBTYPE_DATA_PHY = 0x01
SUBTYPE_DATA_NVS = 0x02
SUBTYPE_DATA_FAT = 0x81

# esp_ota_img_states_t
OTA_IMG_NEW = 0x0
OTA_IMG_PENDING_VERIFY = 0x1
OTA_IMG_VALID = 0x2
OTA_IMG_INVALID = 0x3
OTA_IMG_ABORTED = 0x4
OTA_IMG_UNDEFINED = 0xFFFFFFFF

# esp_err_t values used by the partition and OTA APIs.
ESP_FAIL = -1
ESP_ERR_INVALID_ARG = 0x102
ESP_ERR_INVALID_STATE = 0x103
ESP_ERR_INVALID_SIZE = 0x104
ESP_ERR_NOT_FOUND = 0x105
ESP_ERR_OTA_PARTITION_CONFLICT = 0x1501
ESP_ERR_OTA_SELECT_INFO_INVALID = 0x1502
ESP_ERR_OTA_VALIDATE_FAILED = 0x1503

_ERR_NAMES = {
    ESP_FAIL: "ESP_FAIL",
    ESP_ERR_INVALID_ARG: "ESP_ERR_INVALID_ARG",
    ESP_ERR_INVALID_STATE: "ESP_ERR_INVALID_STATE",
    ESP_ERR_INVALID_SIZE: "ESP_ERR_INVALID_SIZE",
    ESP_ERR_NOT_FOUND: "ESP_ERR_NOT_FOUND",
    ESP_ERR_OTA_PARTITION_CONFLICT: "ESP_ERR_OTA_PARTITION_CONFLICT",
    ESP_ERR_OTA_SELECT_INFO_INVALID: "ESP_ERR_OTA_SELECT_INFO_INVALID",
    ESP_ERR_OTA_VALIDATE_FAILED: "ESP_ERR_OTA_VALIDATE_FAILED",
}

# Chip ids of esp_image_header_t.chip_id.
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9, "esp32c2": 12, "esp32c6": 13}

IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
_IMAGE_HEADER = "<BBBBIBBBBHBHH4sB"  # 24 bytes: common header + extended header
_IMAGE_HEADER_LEN = 24
_MAX_SEGMENTS = 16
_CHECKSUM_SEED = 0xEF

_ENTRY = "<HBBII16sI"
_ENTRY_MAGIC = 0x50AA
_MD5_MAGIC = 0xEBEB
_OTA_ENTRY = "<I20sII"


def esp_error(code, detail=None):
    """The OSError MicroPython's check_esp_err() raises for an esp_err_t (errno is -code).

    detail is the shim's own addition after the ESP-IDF name, to say which rule was broken.
    """
    name = _ERR_NAMES.get(code, "ESP_ERR_0x%x" % code)
    return OSError(-code, name if detail is None else name + ": " + detail)


def _label(raw):
    end = raw.find(b"\x00")
    return (raw if end < 0 else raw[:end]).decode()


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
    entries = []
    pos = 0
    while pos + 32 <= len(raw):
        magic = struct.unpack_from("<H", raw, pos)[0]
        if magic == _MD5_MAGIC:
            if hashlib.md5(bytes(raw[:pos])).digest() != bytes(raw[pos + 16 : pos + 32]):
                raise ValueError("partition table MD5 mismatch")
            return entries
        if magic != _ENTRY_MAGIC:
            break
        _, ptype, subtype, offset, size, label, flags = struct.unpack_from(_ENTRY, raw, pos)
        entries.append((_label(label), ptype, subtype, offset, size, flags))
        pos += 32
    if not entries:
        raise ValueError("no partition table")
    return entries


# --- otadata -----------------------------------------------------------------------------------


def ota_crc(seq):
    return binascii.crc32(struct.pack("<I", seq), 0xFFFFFFFF) & 0xFFFFFFFF


def pack_ota_entry(seq, state):
    return struct.pack(_OTA_ENTRY, seq, b"\xff" * 20, state, ota_crc(seq))


def parse_ota_entry(raw):
    """(seq, state, valid): valid as ESP-IDF's bootloader_common_ota_select_valid()."""
    seq, _, state, crc = struct.unpack_from(_OTA_ENTRY, raw, 0)
    valid = seq != 0xFFFFFFFF and crc == ota_crc(seq)
    return seq, state, valid


def select_entry(entries, bootloader=True):
    """Index (0/1) of the otadata sector in force, or -1.

    entries: two (seq, state, valid) tuples; the valid entry with the higher seq wins
    (bootloader_common_get_active_otadata()). The bootloader also passes over entries whose image
    was marked INVALID or ABORTED; the app-side OTA API does not (bootloader=False).
    """
    best = -1
    for i in (0, 1):
        seq, state, valid = entries[i]
        if not valid or (bootloader and state in (OTA_IMG_INVALID, OTA_IMG_ABORTED)):
            continue
        if best < 0 or seq > entries[best][0]:
            best = i
    return best


# --- app images --------------------------------------------------------------------------------


def _xor_bytes(buf):
    """XOR of all bytes of buf, folded as one big integer (a byte loop is 100 times slower)."""
    x = int.from_bytes(bytes(buf), "little")
    width = len(buf) * 8
    while width > 8:
        width = (width + 15) // 16 * 8  # halve, rounded up to whole bytes
        x = (x >> width) ^ (x & ((1 << width) - 1))
    return x & 0xFF


def image_length(read, limit, chip_id, readinto=None):
    """Validate an ESP32 app image as esp_image_verify() does; return its length in bytes.

    read(offset, n) -> bytes reads the image (the partition); limit is the partition size;
    readinto(offset, buf), when given, reads the bulk of the data into one reused buffer (this
    check is C code on a device: it should not load the MicroPython heap of the virtual board).
    Raises ValueError with the reason when the image is invalid.
    """
    if readinto is None:

        def readinto(offset, buf):
            buf[:] = read(offset, len(buf))

    block = memoryview(bytearray(SECTOR))
    header = read(0, _IMAGE_HEADER_LEN)
    fields = struct.unpack(_IMAGE_HEADER, header)
    magic, nseg, chip, hash_appended = fields[0], fields[1], fields[9], fields[14]
    if magic != IMAGE_MAGIC:
        raise ValueError("bad image magic 0x%02x" % magic)
    if nseg == 0 or nseg > _MAX_SEGMENTS:
        raise ValueError("bad segment count %d" % nseg)
    if chip != chip_id:
        raise ValueError("image is for chip id %d, not %d" % (chip, chip_id))
    pos = _IMAGE_HEADER_LEN
    checksum = _CHECKSUM_SEED
    for _ in range(nseg):
        if pos + 8 > limit:
            raise ValueError("segment header past the end of the partition")
        _, size = struct.unpack("<II", read(pos, 8))
        pos += 8
        if size % 4 or pos + size > limit:
            raise ValueError("bad segment length %d" % size)
        done = 0
        while done < size:
            n = min(SECTOR, size - done)
            buf = block if n == SECTOR else block[:n]
            readinto(pos + done, buf)
            checksum ^= _xor_bytes(buf)
            done += n
        pos += size
    pos += 15 - (pos % 16)  # pad so that the checksum byte ends a 16-byte line
    if pos + 1 > limit or read(pos, 1)[0] != checksum:
        raise ValueError("image checksum mismatch")
    pos += 1
    if hash_appended == 1:
        if pos + 32 > limit:
            raise ValueError("appended SHA-256 past the end of the partition")
        h = hashlib.sha256()
        done = 0
        while done < pos:
            n = min(SECTOR, pos - done)
            buf = block if n == SECTOR else block[:n]
            readinto(done, buf)
            h.update(buf)
            done += n
        if h.digest() != read(pos, 32):
            raise ValueError("appended SHA-256 mismatch")
        pos += 32
    return pos


def app_version(read):
    """The version string of the app descriptor in an image's first segment, or None."""
    desc = read(_IMAGE_HEADER_LEN + 8, 48)
    if struct.unpack_from("<I", desc, 0)[0] != APP_DESC_MAGIC:
        return None
    return _label(desc[16:48])


# --- the flash chip ----------------------------------------------------------------------------


class Flash:
    """One file standing for the whole SPI flash, with NOR semantics.

    erase() sets whole 4 KiB sectors to 0xFF; write() can only clear bits. A write that would set a
    bit back to 1 is refused with ESP_FAIL, as ESP-IDF's CONFIG_SPI_FLASH_VERIFY_WRITE would report
    it, instead of silently AND-ing the data as the chip does. write() and erase() allocate nothing
    (the esp32 shim's writeblocks runs inside heap-locked loops on the unix port).
    """

    def __init__(self, path):
        self.path = path
        # Power-cut emulation (the virtual board's FOTA_POWER_CUT, set by the esp32 shim): when
        # non-zero, counts down at every erase and every program; the operation that brings it to
        # zero lands only half-way and the process dies at once. 0: off.
        self.cut_after = 0
        # MicroPython's unix files are unbuffered and its flush() is an fsync (150 us a call),
        # so only CPython's buffered files are flushed, for other handles on the same file.
        self._f = open(path, "r+b")
        self._flush = sys.implementation.name != "micropython"
        self._f.seek(0, 2)
        self.size = self._f.tell()
        self._erased = bytearray(b"\xff" * SECTOR)
        self._old = bytearray(SECTOR)
        # Erases per sector since this object was opened (saturating at 255): tests read it to
        # prove that each block was erased once.
        self.erase_counts = bytearray(self.size // SECTOR)

    def close(self):
        self._f.close()

    def read(self, addr, n):
        self._f.seek(addr)
        return self._f.read(n)

    def readinto(self, addr, buf):
        self._f.seek(addr)
        self._f.readinto(buf)

    def erase(self, addr, size, fill=True):
        """Erase whole sectors. fill=False: the caller overwrites the whole range at once (the
        simple writeblocks form), so the 0xFF bytes need not reach the file first."""
        if addr % SECTOR or size % SECTOR or addr + size > self.size:
            raise esp_error(ESP_ERR_INVALID_ARG, "erase not sector-aligned")
        if self.cut_after:
            self.cut_after -= 1
            if not self.cut_after:
                self._cut(addr, b"\xff" * size)
        f = self._f
        f.seek(addr)
        counts = self.erase_counts
        for i in range(addr // SECTOR, (addr + size) // SECTOR):
            if fill:
                f.write(self._erased)
            if counts[i] < 255:
                counts[i] += 1
        if self._flush:
            f.flush()

    def write(self, addr, buf, erased=False):
        """Program buf at addr. erased=True: the caller has just erased the range (no check)."""
        n = len(buf)
        if addr + n > self.size:
            raise esp_error(ESP_ERR_INVALID_SIZE, "write past the end of the flash")
        f = self._f
        old = self._old
        done = n if erased else 0
        while done < n:  # compare with what is there, a sector's worth at a time
            k = min(SECTOR, n - done)
            f.seek(addr + done)
            f.readinto(old)
            for i in range(k):
                if old[i] & buf[done + i] != buf[done + i]:
                    raise esp_error(ESP_FAIL, "write to non-erased flash")
            done += k
        if self.cut_after:
            self.cut_after -= 1
            if not self.cut_after:
                self._cut(addr, buf, erased)
        f.seek(addr)
        f.write(buf)
        if self._flush:
            f.flush()

    def _cut(self, addr, data, erased=False):
        """The operation the power cut hits: its first half reaches the flash, then power_cut().

        erased: the range was erased just before without filling (writeblocks), so the half not
        programmed reads as erased flash.
        """
        half = len(data) // 2
        self._f.seek(addr)
        self._f.write(bytes(data[:half]))
        if erased:
            self._f.write(b"\xff" * (len(data) - half))
        if self._flush:
            self._f.flush()
        power_cut()


def power_cut():
    """End this process at once, as a power failure would: no finally blocks, no atexit.

    SIGKILL to ourselves; MicroPython's unix port has neither os.kill nor os._exit, so it asks
    a shell to send it (the shell's parent is this process).
    """
    import os

    if hasattr(os, "kill"):
        os.kill(os.getpid(), 9)
    os.system("kill -9 $PPID")
    raise SystemExit(137)  # not reached unless the kill failed


def make_flash(path, size, entries):
    """A blank flash file of `size` bytes (all 0xFF) with the partition table `entries`."""
    with open(path, "wb") as f:
        blank = b"\xff" * SECTOR
        for _ in range(size // SECTOR):
            f.write(blank)
    flash = Flash(path)
    flash.write(PARTITION_TABLE_OFFSET, pack_partition_table(entries))
    flash.close()


def partitions(flash):
    return parse_partition_table(flash.read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE))


def ota_slots(parts):
    """The OTA app partitions ordered by subtype (ota_0, ota_1, ...)."""
    slots = [p for p in parts if p[1] == TYPE_APP and SUBTYPE_OTA_0 <= p[2] < SUBTYPE_OTA_0 + 16]
    slots.sort(key=lambda p: p[2])
    return slots


def _otadata(parts):
    for p in parts:
        if p[1] == TYPE_DATA and p[2] == SUBTYPE_DATA_OTA:
            return p
    return None


def read_otadata(flash, parts):
    od = _otadata(parts)
    if od is None:
        raise esp_error(ESP_ERR_NOT_FOUND, "no otadata partition")
    return od, [parse_ota_entry(flash.read(od[3] + i * SECTOR, 32)) for i in (0, 1)]


def write_ota_entry(flash, od, sector, seq, state):
    """rewrite_ota_seq(): erase one otadata sector and write its entry."""
    flash.erase(od[3] + sector * SECTOR, SECTOR)
    flash.write(od[3] + sector * SECTOR, pack_ota_entry(seq, state))


def boot_slot(parts, entries, bootloader=True):
    """The partition entry otadata selects (factory, else ota_0, when none is in force)."""
    slots = ota_slots(parts)
    active = select_entry(entries, bootloader)
    if active >= 0 and slots:
        return slots[(entries[active][0] - 1) % len(slots)]
    for p in parts:
        if p[1] == TYPE_APP and p[2] == SUBTYPE_FACTORY:
            return p
    return slots[0]


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
            image_length(
                lambda off, n, p=part: flash.read(p[3] + off, n),
                part[4],
                chip_id,
                lambda off, buf, p=part: flash.readinto(p[3] + off, buf),
            )
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
