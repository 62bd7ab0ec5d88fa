# ESP-IDF's on-flash formats, the part the esp32 shim needs at run time: partition table, otadata,
# app image validation and the flash chip itself.
#
# This is C code on a device, so on the virtual board it should weigh as little as possible on the
# MicroPython heap: only what esp32.Partition uses is here, and validation streams the image
# through one small buffer. espidf.py re-exports all of it for the host, with the builders of
# flash files and images (see there for the formats) and the emulated bootloader.

import binascii
import hashlib
import struct
import sys

from micropython import const  # private const()s: no global, so no heap on MicroPython

_SECTOR = const(4096)
_PARTITION_TABLE_OFFSET = const(0x8000)
_PARTITION_TABLE_SIZE = const(0xC00)

_TYPE_APP = const(0x00)
_TYPE_DATA = const(0x01)
_SUBTYPE_FACTORY = const(0x00)
_SUBTYPE_OTA_0 = const(0x10)
_SUBTYPE_DATA_OTA = const(0x00)

# esp_ota_img_states_t (the others, which only the bootloader sets, are in espidf.py)
_OTA_IMG_NEW = const(0x0)
_OTA_IMG_VALID = const(0x2)
_OTA_IMG_INVALID = const(0x3)
_OTA_IMG_ABORTED = const(0x4)

# esp_err_t values that the shim's partition and OTA operations raise (espidf.py adds the other
# ones of these APIs to _ERR_NAMES).
_ESP_FAIL = const(-1)
_ESP_ERR_INVALID_ARG = const(0x102)
_ESP_ERR_INVALID_SIZE = const(0x104)
_ESP_ERR_NOT_FOUND = const(0x105)
_ESP_ERR_OTA_VALIDATE_FAILED = const(0x1503)

_ERR_NAMES = {
    _ESP_FAIL: "ESP_FAIL",
    _ESP_ERR_INVALID_ARG: "ESP_ERR_INVALID_ARG",
    _ESP_ERR_INVALID_SIZE: "ESP_ERR_INVALID_SIZE",
    _ESP_ERR_NOT_FOUND: "ESP_ERR_NOT_FOUND",
    _ESP_ERR_OTA_VALIDATE_FAILED: "ESP_ERR_OTA_VALIDATE_FAILED",
}

# Chip ids of esp_image_header_t.chip_id.
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9, "esp32c2": 12, "esp32c6": 13}

_IMAGE_MAGIC = const(0xE9)
_IMAGE_HEADER = const("<BBBBIBBBBHBHH4sB")  # 24 bytes: common header + extended header
_IMAGE_HEADER_LEN = const(24)
_MAX_SEGMENTS = const(16)
_CHECKSUM_SEED = const(0xEF)

_ENTRY = const("<HBBII16sI")
_ENTRY_MAGIC = const(0x50AA)
_MD5_MAGIC = const(0xEBEB)
_OTA_ENTRY = const("<I20sII")

# Flash's scratch buffers: sector-sized work goes through them in pieces, so that the emulated
# chip keeps only 512 bytes of buffers on the heap (a syscall more per piece costs nothing here).
_CHUNK = const(256)
# One record of the write log (Flash.trace): operation (1 erase, 2 program), address, size.
_TRACE_RECORD = const("<III")


def esp_error(code, detail=None):
    """The OSError MicroPython's check_esp_err() raises for an esp_err_t (errno is -code).

    detail is the shim's own addition after the ESP-IDF name, to say which rule was broken.
    """
    name = _ERR_NAMES.get(code, "ESP_ERR_0x%x" % code)
    return OSError(-code, name if detail is None else name + ": " + detail)


# --- partition table ---------------------------------------------------------------------------


def partitions(flash):
    """The table's entries as (label, type, subtype, offset, size, flags); ValueError if corrupt.

    Read a row at a time: the whole 3 KiB table at once would be the largest allocation of the
    shim, and the peak of its heap.
    """
    entries = []
    md5 = hashlib.md5()
    for pos in range(_PARTITION_TABLE_OFFSET, _PARTITION_TABLE_OFFSET + _PARTITION_TABLE_SIZE, 32):
        row = flash.read(pos, 32)
        if len(row) < 32:
            break
        magic = struct.unpack_from("<H", row, 0)[0]
        if magic == _MD5_MAGIC:
            if md5.digest() != row[16:32]:
                raise ValueError("partition table MD5 mismatch")
            return entries
        if magic != _ENTRY_MAGIC:
            break
        _, ptype, subtype, offset, size, label, flags = struct.unpack(_ENTRY, row)
        entries.append((label.split(b"\x00")[0].decode(), ptype, subtype, offset, size, flags))
        md5.update(row)
    if not entries:
        raise ValueError("no partition table")
    return entries


def ota_slots(parts):
    """The OTA app partitions ordered by subtype (ota_0, ota_1, ...), in table order within one."""
    slots = []
    for subtype in range(_SUBTYPE_OTA_0, _SUBTYPE_OTA_0 + 16):
        for p in parts:
            if p[1] == _TYPE_APP and p[2] == subtype:
                slots.append(p)
    return slots


def boot_slot(parts, entries, bootloader=True):
    """The partition entry otadata selects (factory, else ota_0, when none is in force)."""
    slots = ota_slots(parts)
    active = select_entry(entries, bootloader)
    if active >= 0 and slots:
        return slots[(entries[active][0] - 1) % len(slots)]
    for p in parts:
        if p[1] == _TYPE_APP and p[2] == _SUBTYPE_FACTORY:
            return p
    return slots[0]


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
        if not valid or (bootloader and state in (_OTA_IMG_INVALID, _OTA_IMG_ABORTED)):
            continue
        if best < 0 or seq > entries[best][0]:
            best = i
    return best


def read_otadata(flash, parts):
    """(otadata partition entry, its two (seq, state, valid) entries)."""
    for od in parts:
        if od[1] == _TYPE_DATA and od[2] == _SUBTYPE_DATA_OTA:
            first = parse_ota_entry(flash.read(od[3], 32))
            return od, [first, parse_ota_entry(flash.read(od[3] + _SECTOR, 32))]
    raise esp_error(_ESP_ERR_NOT_FOUND, "no otadata partition")


def write_ota_entry(flash, od, sector, seq, state):
    """rewrite_ota_seq(): erase one otadata sector and write its entry."""
    flash.erase(od[3] + sector * _SECTOR, _SECTOR)
    flash.write(od[3] + sector * _SECTOR, pack_ota_entry(seq, state))


# --- app images --------------------------------------------------------------------------------


def verify_image(flash, addr, limit, chip_id):
    """Validate the app image at addr as esp_image_verify() does; return its length in bytes.

    flash: a Flash, or any object with its read(), readinto() and scratch; limit: the partition
    size. The image streams through flash.scratch, so that validation allocates next to nothing
    (C code on a device). Raises ValueError with the reason when the image is invalid.
    """
    fields = struct.unpack(_IMAGE_HEADER, flash.read(addr, _IMAGE_HEADER_LEN))
    magic, nseg, chip, hash_appended = fields[0], fields[1], fields[9], fields[14]
    if magic != _IMAGE_MAGIC:
        raise ValueError("bad image magic 0x%02x" % magic)
    if nseg == 0 or nseg > _MAX_SEGMENTS:
        raise ValueError("bad segment count %d" % nseg)
    if chip != chip_id:
        raise ValueError("image is for chip id %d, not %d" % (chip, chip_id))
    block = memoryview(flash.scratch)
    pos = _IMAGE_HEADER_LEN
    checksum = _CHECKSUM_SEED
    for _ in range(nseg):
        if pos + 8 > limit:
            raise ValueError("segment header past the end of the partition")
        _, size = struct.unpack("<II", flash.read(addr + pos, 8))
        pos += 8
        if size % 4 or pos + size > limit:
            raise ValueError("bad segment length %d" % size)
        end = pos + size
        while pos < end:
            # A byte loop: on the unix port it allocates nothing (the iterator lives on the VM
            # stack) and set_boot of a 1.5 MB image still takes only 70 ms. Folding the block as
            # one big integer is faster but leaves garbage of twice its size per block.
            buf = block if end - pos >= len(block) else block[: end - pos]
            flash.readinto(addr + pos, buf)
            for b in buf:
                checksum ^= b
            pos += len(buf)
    pos += 15 - (pos % 16)  # pad so that the checksum byte ends a 16-byte line
    if pos + 1 > limit or flash.read(addr + pos, 1)[0] != checksum:
        raise ValueError("image checksum mismatch")
    pos += 1
    if hash_appended == 1:
        if pos + 32 > limit:
            raise ValueError("appended SHA-256 past the end of the partition")
        h = hashlib.sha256()
        done = 0
        while done < pos:
            buf = block if pos - done >= len(block) else block[: pos - done]
            flash.readinto(addr + done, buf)
            h.update(buf)
            done += len(buf)
        if h.digest() != flash.read(addr + pos, 32):
            raise ValueError("appended SHA-256 mismatch")
        pos += 32
    return pos


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
        # Write log (the virtual board's FOTA_WRITE_TRACE, opened by the esp32 shim): a binary
        # file with one record per erase and per program (_TRACE_RECORD: 1 erase / 2 program,
        # address, size), written before the operation, so that the last record of a boot the
        # power cut ended is the operation it hit. None: off.
        self.trace = None
        self._record = bytearray(12)
        # MicroPython's unix files are unbuffered and its flush() is an fsync (150 us a call),
        # so only CPython's buffered files are flushed, for other handles on the same file.
        self._f = open(path, "r+b")
        self._flush = sys.implementation.name != "micropython"
        self._f.seek(0, 2)
        self.size = self._f.tell()
        self._erased = bytearray(b"\xff" * _CHUNK)
        # Reads that write() compares with, and verify_image()'s stream: never both at once.
        self.scratch = bytearray(_CHUNK)
        # Erases per sector since this object was opened (saturating at 255): tests read it to
        # prove that each block was erased once.
        self.erase_counts = bytearray(self.size // _SECTOR)

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
        if addr % _SECTOR or size % _SECTOR or addr + size > self.size:
            raise esp_error(_ESP_ERR_INVALID_ARG, "erase not sector-aligned")
        if self.trace is not None:
            self._log(1, addr, size)
        if self.cut_after:
            self.cut_after -= 1
            if not self.cut_after:
                self._cut(addr, None, False, size)
        f = self._f
        if fill:
            f.seek(addr)
            for _ in range(size // _CHUNK):
                f.write(self._erased)
        counts = self.erase_counts
        for i in range(addr // _SECTOR, (addr + size) // _SECTOR):
            if counts[i] < 255:
                counts[i] += 1
        if self._flush:
            f.flush()

    def _fill(self, n):
        # n erased (0xFF) bytes at the file's position, from the preallocated chunk
        erased = memoryview(self._erased)
        while n > 0:
            k = n if n < _CHUNK else _CHUNK
            self._f.write(erased[:k])
            n -= k

    def write(self, addr, buf, erased=False):
        """Program buf at addr. erased=True: the caller has just erased the range (no check)."""
        n = len(buf)
        if addr + n > self.size:
            raise esp_error(_ESP_ERR_INVALID_SIZE, "write past the end of the flash")
        f = self._f
        old = self.scratch
        done = n if erased else 0
        while done < n:  # compare with what is there, a chunk at a time
            k = min(_CHUNK, n - done)
            f.seek(addr + done)
            f.readinto(old)
            for i in range(k):
                if old[i] & buf[done + i] != buf[done + i]:
                    raise esp_error(_ESP_FAIL, "write to non-erased flash")
            done += k
        if self.trace is not None:
            self._log(2, addr, n)
        if self.cut_after:
            self.cut_after -= 1
            if not self.cut_after:
                self._cut(addr, buf, erased)
        f.seek(addr)
        f.write(buf)
        if self._flush:
            f.flush()

    def _log(self, op, addr, n):
        # one record, from the preallocated buffer: the log costs the board's heap nothing
        struct.pack_into(_TRACE_RECORD, self._record, 0, op, addr, n)
        self.trace.write(self._record)
        if self._flush:
            self.trace.flush()

    def _cut(self, addr, data, erased=False, size=0):
        """The operation the power cut hits: its first half reaches the flash, then power_cut().

        data: the bytes of a program, or None for an erase of `size` bytes. erased: the range
        was erased just before without filling (writeblocks), so the half not programmed reads as
        erased flash. Allocates nothing on the board's heap: on a board this is no code at all,
        and the agent's heap must not pay for it.
        """
        n = size if data is None else len(data)
        half = n // 2
        self._f.seek(addr)
        if data is None:
            self._fill(half)
        else:
            self._f.write(memoryview(data)[:half])
            if erased:
                self._fill(n - half)
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
