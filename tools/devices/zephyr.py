# Stand-in of MicroPython's `zephyr` module (ports/zephyr) for the host: zephyr.FlashArea over a
# flash file, the block device an nRF board's firmware sees its MCUboot slots and its storage
# partition through.
#
# The real port's API, as zephyr_storage.c implements it over Zephyr's flash_area_* calls:
#   FlashArea(id, block_size)      ValueError("unable to open flash area") for an unknown id,
#                                  ValueError("invalid block size") for block_size <= 0
#   FlashArea.areas                {devicetree label: (id, erase block size)}
#   readblocks(block, buf[, off])  -> 0 or a negative errno (never raises)
#   writeblocks(block, buf)        erases ONE block_size at block * block_size, then writes buf
#   writeblocks(block, buf, off)   writes at block * block_size + off without erasing
#   ioctl(op, arg)                 1/2/3 (init, deinit, sync) -> 0, 4 block count, 5 block size,
#                                  6 erase block `arg` -> 0 or -errno, anything else -1; arg is
#                                  converted with mp_obj_get_int (None raises TypeError)
# The flash behaves as the nRF's NVMC: a program can only clear bits (the stored byte is the AND
# of old and new), an erase sets a 4096-byte page to 0xff, writes must be 4-byte aligned in
# offset and length, and a misaligned or out-of-range access returns -EINVAL (-22).
#
# Which flash: zephyr.attach(path, partitions) or, in a firmware process of the virtual board,
# FOTA_FLASH (the flash file) and FOTA_BOARD (the board.json whose "partitions" rows
# [label, offset, size] are the devicetree's fixed partitions; ids follow the rows' order).
# FOTA_POWER_CUT=K: the K-th erase or program of this process lands half-way and the process
# dies, as in a power failure (the esp32 stand-in does the same). FOTA_WRITE_TRACE=PATH: every
# erase and program is appended to the binary write log at PATH before it runs, in the esp32
# stand-in's record format (tools/vboard_writes.py reads it).

import os
import struct
import sys

_EINVAL = 22
_PAGE = 4096
_WRITE_ALIGN = 4  # the nRF flash controller's write-block-size
_CHUNK = 256
# MicroPython's unix files are unbuffered and flush() is an fsync: only CPython's need it
_FLUSH = sys.implementation.name != "micropython"

_flash = None
_parts = []  # (label, offset, size) by id
_power_cut = None  # espflash.power_cut while a power cut is armed


class _Flash:
    """The flash file; program() ANDs (NOR), erase() fills pages with 0xff. Preallocated
    buffers: a program through an erased block allocates nothing."""

    def __init__(self, path):
        self._f = open(path, "r+b")
        self._f.seek(0, 2)
        self.size = self._f.tell()
        self.cut_after = 0  # FOTA_POWER_CUT: counts down per erase and program; 0: off
        self.trace = None  # FOTA_WRITE_TRACE: the write log's file, or None
        self._record = bytearray(12)  # one record: op (1 erase, 2 program), address, size
        self._erased = bytearray(b"\xff" * _CHUNK)
        self._old = bytearray(_CHUNK)

    def close(self):
        self._f.close()

    def readinto(self, addr, buf):
        self._f.seek(addr)
        self._f.readinto(buf)

    def erase(self, addr, size):
        self._tick(addr, None, size)
        f = self._f
        f.seek(addr)
        for _ in range(size // _CHUNK):
            f.write(self._erased)
        if _FLUSH:
            f.flush()

    def program(self, addr, buf, erased=False):
        """Program buf at addr; erased=True: the range was erased just now (no AND needed)."""
        n = len(buf)
        if not erased:
            buf = self._and(addr, buf)
        self._tick(addr, buf, n)
        self._f.seek(addr)
        self._f.write(buf)
        if _FLUSH:
            self._f.flush()

    def _and(self, addr, buf):
        # NOR: a 0 bit stays 0. Returns buf itself when nothing it sets is cleared already.
        old = self._old
        out = None
        done = 0
        n = len(buf)
        while done < n:
            k = min(_CHUNK, n - done)
            self._f.seek(addr + done)
            self._f.readinto(old)
            for i in range(k):
                b = buf[done + i]
                if old[i] & b != b:
                    if out is None:
                        out = bytearray(buf)
                    out[done + i] = old[i] & b
            done += k
        return buf if out is None else out

    def _tick(self, addr, data, size):
        if self.trace is not None:  # from a preallocated record: the log costs no heap
            struct.pack_into("<III", self._record, 0, 1 if data is None else 2, addr, size)
            self.trace.write(self._record)
            if _FLUSH:
                self.trace.flush()
        if not self.cut_after:
            return
        self.cut_after -= 1
        if self.cut_after:
            return
        # the operation the power cut hits: its first half reaches the flash, then the end
        half = size // 2
        self._f.seek(addr)
        if data is None:
            while half > 0:
                k = min(half, _CHUNK)
                self._f.write(memoryview(self._erased)[:k])
                half -= k
        else:
            self._f.write(memoryview(data)[:half])
        if _FLUSH:
            self._f.flush()
        _power_cut()


def attach(path, partitions):
    """Host helper, not device API: use the flash file at path; partitions: [(label, offset,
    size)] (ints or hex strings) in devicetree order, their ids 0, 1, ..."""
    global _flash
    detach()
    _flash = _Flash(path)
    cut = os.getenv("FOTA_POWER_CUT")
    if cut:
        global _power_cut
        # imported now: on the virtual board the host's files are unmounted once /flash is
        from espflash import power_cut as _power_cut

        _flash.cut_after = int(cut)
    trace = os.getenv("FOTA_WRITE_TRACE")  # opened now, as the power cut's import above
    if trace:
        _flash.trace = open(trace, "ab")
    FlashArea.areas.clear()
    for i, (label, off, size) in enumerate(partitions):
        off = int(off, 16) if isinstance(off, str) else off
        size = int(size, 16) if isinstance(size, str) else size
        _parts.append((label, off, size))
        FlashArea.areas[label] = (i, _PAGE)


def detach():
    global _flash
    if _flash is not None:
        if _flash.trace is not None:
            _flash.trace.close()
        _flash.close()
        _flash = None
    del _parts[:]
    FlashArea.areas.clear()


def attached_flash():
    """Host helper, not device API: the _Flash behind the areas (tests set cut_after)."""
    return _flash


def _attach_from_env():
    path = os.getenv("FOTA_FLASH")
    board = os.getenv("FOTA_BOARD")
    if not path or not board:
        return
    import json

    with open(board) as f:
        rows = json.load(f)["partitions"]
    attach(path, [(r[0], r[-2], r[-1]) for r in rows])


class FlashArea:
    areas = {}

    def __init__(self, id, block_size):
        block_size = int(block_size)
        if block_size <= 0:
            raise ValueError("invalid block size")
        id = int(id)
        if _flash is None or not 0 <= id < len(_parts):
            raise ValueError("unable to open flash area")
        self._id = id
        self._off = _parts[id][1]
        self._size = _parts[id][2]
        self._bs = block_size

    def __repr__(self):
        return "FlashArea(%d)" % self._id

    def _bad(self, off, n):
        # flash_area_read/write/erase: the range must lie inside the area
        return off < 0 or n < 0 or off + n > self._size

    def readblocks(self, block, buf, off=0):
        start = int(block) * self._bs + int(off)
        if self._bad(start, len(buf)):
            return -_EINVAL
        _flash.readinto(self._off + start, buf)
        return 0

    def writeblocks(self, block, buf, off=None):
        start = int(block) * self._bs
        if off is None:
            ret = self._erase(start, self._bs)
            if ret:
                return ret
            # erased just now: the bytes it covers need no AND (past it, the flash as it is)
            return self._program(start, buf, len(buf) <= self._bs)
        return self._program(start + int(off), buf, False)

    def _erase(self, start, n):
        if self._bad(start, n) or (self._off + start) % _PAGE or n % _PAGE:
            return -_EINVAL
        _flash.erase(self._off + start, n)
        return 0

    def _program(self, start, buf, erased):
        n = len(buf)
        if self._bad(start, n) or (self._off + start) % _WRITE_ALIGN or n % _WRITE_ALIGN:
            return -_EINVAL
        if n:
            _flash.program(self._off + start, buf, erased)
        return 0

    def ioctl(self, op, arg):
        arg = int(arg)  # mp_obj_get_int: TypeError for None, as on the board
        if op in (1, 2, 3):
            return 0
        if op == 4:
            return self._size // self._bs
        if op == 5:
            return self._bs
        if op == 6:
            return self._erase(arg * self._bs, self._bs)
        return -1


_attach_from_env()
