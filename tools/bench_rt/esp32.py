# make bench's stand-in for MicroPython's `esp32` module: a file-backed slot, and nothing more.
#
# On a device esp32.Partition is C code in the firmware, so none of its memory is on the
# MicroPython heap. The test suite's shim (tools/devices/esp32.py) emulates ESP-IDF faithfully
# (erase-before-write, bounds, otadata, set_boot's image check) and weighs about 18 KB of heap on
# this port; this stand-in keeps only what the download path calls, so that the heap make bench
# measures is the agent's, not the emulator's. It reads the board's real partition table (the
# ESP-IDF format the virtual board uses) and writes the slot's bytes straight into the flash
# file. set_boot() records nothing: make bench stops at its call (ESP-IDF's code on a device) and
# measures the faithful emulation separately, with the shim.

import struct

_TABLE = 0x8000  # ESP-IDF's partition table offset: 32-byte rows, magic 0x50AA
_board = None


class _Board:
    def __init__(self, path, running):
        self.file = open(path, "r+b")
        self.slots = []  # (label, offset, size) of the OTA app slots, in table order
        self.running = None
        row = bytearray(32)
        pos = _TABLE
        while True:
            self.file.seek(pos)
            if self.file.readinto(row) != 32 or row[0] != 0xAA or row[1] != 0x50:
                break
            if row[2] == 0 and 0x10 <= row[3] < 0x20:  # app, ota_N
                label = bytes(row[12:28]).split(b"\x00")[0].decode()
                offset, size = struct.unpack_from("<II", row, 4)
                self.slots.append((label, offset, size))
                if label == running:
                    self.running = self.slots[-1]
            pos += 32


def attach(path, chip="esp32", running="ota_0"):
    """The flash file at path, booted from the slot labelled running (the shim's signature)."""
    global _board
    _board = _Board(path, running)


class Partition:
    RUNNING = 1

    def __init__(self, id, block_size=4096):
        if id == Partition.RUNNING:
            self._slot = _board.running
        else:
            self._slot = [s for s in _board.slots if s[0] == id][0]

    def info(self):
        label, offset, size = self._slot
        return (0, 0x10, offset, size, label, False)

    def get_next_update(self):
        slots = _board.slots
        return Partition(slots[(slots.index(self._slot) + 1) % len(slots)][0])

    def ioctl(self, cmd, arg):
        return self._slot[2] // 4096 if cmd == 4 else 4096 if cmd == 5 else 0

    def readblocks(self, block, buf, offset=0):
        f = _board.file
        f.seek(self._slot[1] + block * 4096 + offset)
        f.readinto(buf)

    def writeblocks(self, block, buf, offset=None):  # None: ESP-IDF's erase-and-write form
        f = _board.file
        f.seek(self._slot[1] + block * 4096 + (offset or 0))
        f.write(buf)

    def set_boot(self):
        pass
