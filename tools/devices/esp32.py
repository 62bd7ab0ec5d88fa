# Shim of MicroPython's `esp32` module for the host: esp32.Partition on a flash file.
#
# Strict about what ESP-IDF enforces: 4096-byte erase sectors, erase-before-write (NOR flash can
# only clear bits), bounds, image validation in set_boot(), and the same OSError codes that
# MicroPython's check_esp_err() raises (errno = -esp_err_t, message = the ESP-IDF name). The flash
# file holds ESP-IDF's own binary formats (see espflash.py), so the virtual board and any ESP-IDF
# reader see the same bytes.
#
# Which flash: esp32.attach(path, chip, running) or, for a firmware process started by the
# virtual board, the environment variables FOTA_FLASH, FOTA_CHIP and FOTA_RUNNING (the label of
# the slot the emulated bootloader started). The shim's own helpers start with `attach`/`detach`
# and are not part of the device API; firmware code is type-checked against the real stubs.
# FOTA_POWER_CUT=K (virtual board): the K-th flash erase or program of this process is torn
# half-way and the process dies, as in a power failure (espflash.Flash.cut_after).
# FOTA_WRITE_TRACE=PATH (virtual board): every erase and program is appended to the binary write
# log at PATH (espflash.Flash.trace; tools/vboard_writes.py reads it).

import errno
import os

import espflash
from micropython import const

# ESP-IDF's values this module uses (espflash's, kept as private const()s there too: a
# public name would cost the virtual board's heap an interned string)
_ESP_ERR_INVALID_ARG = const(0x102)
_ESP_ERR_INVALID_SIZE = const(0x104)
_ESP_ERR_OTA_VALIDATE_FAILED = const(0x1503)
_ESP_FAIL = const(-1)
_OTA_IMG_NEW = const(0x0)
_OTA_IMG_VALID = const(0x2)
_SECTOR = const(4096)
_SUBTYPE_FACTORY = const(0x00)
_TYPE_APP = const(0x00)
_TYPE_DATA = const(0x01)

_board = None


class _Board:
    def __init__(self, path, chip, running):
        self.flash = espflash.Flash(path)
        cut = os.getenv("FOTA_POWER_CUT")  # the virtual board's power cut: see espflash.Flash
        if cut:
            self.flash.cut_after = int(cut)
        trace = os.getenv("FOTA_WRITE_TRACE")  # opened now: later the host's files are gone
        if trace:
            self.flash.trace = open(trace, "ab")
        self.chip_id = espflash.CHIP_IDS[chip]
        self.parts = espflash.partitions(self.flash)
        if running is None:
            _, entries = espflash.read_otadata(self.flash, self.parts)
            self.running = espflash.boot_slot(self.parts, entries)
        else:
            self.running = _find_entry(self.parts, running)
            if self.running is None:
                raise ValueError("no partition labelled " + running)


def attach(path, chip="esp32", running=None):
    """Use the flash file at path; running: label of the booted slot (default: from otadata)."""
    global _board
    detach()
    _board = _Board(path, chip, running)


def detach():
    global _board
    if _board is not None:
        if _board.flash.trace is not None:
            _board.flash.trace.close()
        _board.flash.close()
        _board = None


def attached_flash():
    """Host helper, not device API: the espflash.Flash behind the partitions (for tests)."""
    return _get_board().flash


def _get_board():
    if _board is None:
        path = os.getenv("FOTA_FLASH")
        if not path:
            raise OSError(errno.ENODEV, "esp32 shim: no flash attached (FOTA_FLASH unset)")
        attach(path, os.getenv("FOTA_CHIP") or "esp32", os.getenv("FOTA_RUNNING") or None)
    return _board


def _find_entry(parts, label, ptype=None):
    for p in parts:
        if (label is None or p[0] == label) and (ptype is None or p[1] == ptype):
            return p
    return None


def _check_range(part, offset, size, erase):
    # esp_partition_read/write/erase_range argument checks, in ESP-IDF's order.
    if offset > part[4]:
        raise espflash.esp_error(_ESP_ERR_INVALID_ARG, "offset past the partition end")
    if size > part[4] - offset:
        raise espflash.esp_error(_ESP_ERR_INVALID_SIZE, "range past the partition end")
    if erase and size % _SECTOR:
        raise espflash.esp_error(_ESP_ERR_INVALID_SIZE, "erase size not a multiple of 4096")
    if erase and offset % _SECTOR:
        raise espflash.esp_error(_ESP_ERR_INVALID_ARG, "erase offset not 4096-aligned")


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=4096):
        board = _get_board()
        if isinstance(id, int):
            if id == Partition.BOOT:
                _, entries = espflash.read_otadata(board.flash, board.parts)
                part = espflash.boot_slot(board.parts, entries, False)
            elif id == Partition.RUNNING:
                part = board.running
            else:
                raise ValueError()
        else:
            part = _find_entry(board.parts, id, _TYPE_APP)
            if part is None:
                part = _find_entry(board.parts, id, _TYPE_DATA)
        if part is None:
            raise OSError(errno.ENOENT, "ENOENT")
        if block_size <= 0 or block_size % _SECTOR:
            raise ValueError("esp32 shim: block_size must be a multiple of 4096")
        self._part = part
        self._bs = block_size
        self._board = board

    def __repr__(self):
        p = self._part
        return "<Partition type=%d, subtype=%d, address=%d, size=%d, label=%s, encrypted=0>" % (
            p[1], p[2], p[3], p[4], p[0])  # fmt: skip

    def __eq__(self, other):
        return isinstance(other, Partition) and self._part[3] == other._part[3]

    def __hash__(self):
        return self._part[3]

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None):
        board = _get_board()
        found = []
        for p in board.parts:
            if p[1] == type and (subtype == 0xFF or p[2] == subtype):
                if label is None or p[0] == label:
                    found.append(Partition(p[0]))
        return found

    def info(self):
        p = self._part
        return (p[1], p[2], p[3], p[4], p[0], False)

    def readblocks(self, block_num, buf, offset=0):
        start = block_num * self._bs + offset
        _check_range(self._part, start, len(buf), False)
        self._board.flash.readinto(self._part[3] + start, buf)

    def writeblocks(self, block_num, buf, offset=None):
        start = block_num * self._bs
        flash = self._board.flash
        if offset is None:  # a simple write: ESP-IDF erases the range first
            _check_range(self._part, start, len(buf), True)
            flash.erase(self._part[3] + start, len(buf), False)
            flash.write(self._part[3] + start, buf, True)
        else:  # an extended write: the caller must have erased (ioctl 6)
            start += offset
            _check_range(self._part, start, len(buf), False)
            flash.write(self._part[3] + start, buf)

    def ioctl(self, cmd, arg):
        if cmd in (1, 2, 3):  # init, deinit, sync
            return 0
        if cmd == 4:  # block count
            return self._part[4] // self._bs
        if cmd == 5:  # block size
            return self._bs
        if cmd == 6:  # erase one block
            start = arg * self._bs
            _check_range(self._part, start, self._bs, True)
            self._board.flash.erase(self._part[3] + start, self._bs)
            return 0
        return None

    def set_boot(self):
        """esp_ota_set_boot_partition(): validate the image, then write the next otadata entry."""
        board = self._board
        part = self._part
        if part[1] != _TYPE_APP:
            raise espflash.esp_error(_ESP_ERR_INVALID_ARG, "not an app partition")
        od, entries = espflash.read_otadata(board.flash, board.parts)
        if part[2] == _SUBTYPE_FACTORY:  # booting factory: erase otadata
            board.flash.erase(od[3], 2 * _SECTOR)
            return
        try:
            espflash.verify_image(board.flash, part[3], part[4], board.chip_id)
        except ValueError as exc:
            raise espflash.esp_error(_ESP_ERR_OTA_VALIDATE_FAILED, str(exc))
        slots = espflash.ota_slots(board.parts)
        n = len(slots)
        index = slots.index(part)
        active = espflash.select_entry(entries, False)
        if active < 0:
            espflash.write_ota_entry(board.flash, od, 0, index + 1, _OTA_IMG_NEW)
            return
        seq = entries[active][0]
        i = 0
        while seq > (index + 1) % n + i * n:
            i += 1
        new_seq = (index + 1) % n + i * n
        espflash.write_ota_entry(board.flash, od, 1 - active, new_seq, _OTA_IMG_NEW)

    def get_next_update(self):
        board = self._board
        slots = espflash.ota_slots(board.parts)
        if not slots:
            raise OSError(errno.ENOENT, "ENOENT")
        if board.running in slots:
            nxt = slots[(slots.index(board.running) + 1) % len(slots)]
        else:
            nxt = slots[0]
        return Partition(nxt[0])

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        """esp_ota_mark_app_valid_cancel_rollback(): the otadata entry in force becomes VALID."""
        board = _get_board()
        od, entries = espflash.read_otadata(board.flash, board.parts)
        active = espflash.select_entry(entries, False)
        if active < 0 or not espflash.ota_slots(board.parts):
            raise espflash.esp_error(_ESP_FAIL, "running firmware is factory")
        seq, state, _ = entries[active]
        if state != _OTA_IMG_VALID:
            espflash.write_ota_entry(board.flash, od, active, seq, _OTA_IMG_VALID)
