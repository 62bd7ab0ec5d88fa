# The zephyr.FlashArea stand-in keeps the zephyr port's API (return codes, never raising, one
# block erased per simple write) and the nRF flash's NOR semantics, on CPython and MicroPython.

import micropython
import zephyr
from dual import board_profile, raises, rmtree, tmpdir

RUN_ON_MICROPYTHON = True

_BLOCK = 4096
_EINVAL = -22


def _board():
    """A blank (erased) 1 MiB flash with the nrf52840 profile's areas attached."""
    tmp = tmpdir()
    path = tmp + "/flash.bin"
    with open(path, "wb") as f:
        chunk = b"\xff" * 65536
        for _ in range(16):
            f.write(chunk)
    rows = board_profile("nrf52840")["partitions"]
    zephyr.attach(path, [(r[0], r[1], r[2]) for r in rows])
    return tmp, path


def _done(tmp):
    zephyr.detach()
    rmtree(tmp)


def _area(label):
    return zephyr.FlashArea(*zephyr.FlashArea.areas[label])


def _read(area, block, n, off=0):
    buf = bytearray(n)
    assert area.readblocks(block, buf, off) == 0
    return buf


def test_areas_and_ioctl_follow_the_devicetree():
    tmp, _ = _board()
    try:
        areas = zephyr.FlashArea.areas
        assert areas == {
            "mcuboot": (0, 4096),
            "image-0": (1, 4096),
            "image-1": (2, 4096),
            "storage": (3, 4096),
        }
        storage = _area("storage")
        assert repr(storage) == "FlashArea(3)"
        assert [storage.ioctl(op, 0) for op in (1, 2, 3)] == [0, 0, 0]
        assert storage.ioctl(4, 0) == 0x50000 // _BLOCK
        assert storage.ioctl(5, 0) == _BLOCK
        assert storage.ioctl(99, 0) == -1
        raises(TypeError, storage.ioctl, 4, None)  # mp_obj_get_int(None)
        assert zephyr.FlashArea(2, 512).ioctl(4, 0) == 0x52000 // 512
        exc = raises(ValueError, zephyr.FlashArea, 9, 4096)
        assert exc.args[0] == "unable to open flash area"
        assert raises(ValueError, zephyr.FlashArea, 1, 0).args[0] == "invalid block size"
    finally:
        _done(tmp)


def test_a_simple_write_erases_exactly_one_block():
    tmp, _ = _board()
    try:
        area = _area("image-1")
        assert area.writeblocks(0, bytearray(b"\x00" * (3 * _BLOCK))) == 0
        # block 1 again with 16 bytes: only block 1 is erased, blocks 0 and 2 keep their zeros
        assert area.writeblocks(1, bytearray(b"\x5a" * 16)) == 0
        assert _read(area, 0, _BLOCK) == b"\x00" * _BLOCK
        block1 = _read(area, 1, _BLOCK)
        assert block1[:16] == b"\x5a" * 16 and block1[16:] == b"\xff" * (_BLOCK - 16)
        assert _read(area, 2, _BLOCK) == b"\x00" * _BLOCK
    finally:
        _done(tmp)


def test_a_write_with_offset_does_not_erase_and_only_clears_bits():
    tmp, _ = _board()
    try:
        area = _area("image-1")
        assert area.writeblocks(0, bytearray(b"\xf0" * 8)) == 0
        assert area.writeblocks(0, bytearray(b"\x3c" * 8), 0) == 0  # NOR: old AND new
        assert _read(area, 0, 8) == b"\x30" * 8
        assert area.writeblocks(0, bytearray(b"\xa5" * 4), 8) == 0  # erased bytes take it
        assert _read(area, 0, 12) == b"\x30" * 8 + b"\xa5" * 4
        # ioctl 6 erases one block: the page reads 0xff again
        assert area.ioctl(6, 0) == 0
        assert _read(area, 0, 16) == b"\xff" * 16
    finally:
        _done(tmp)


def test_misaligned_and_out_of_range_accesses_return_einval():
    tmp, path = _board()
    try:
        area = _area("image-1")
        before = _read(area, 0, 64)
        assert area.writeblocks(0, bytearray(6), 0) == _EINVAL  # length not a multiple of 4
        assert area.writeblocks(0, bytearray(8), 2) == _EINVAL  # offset not 4-aligned
        assert _read(area, 0, 64) == before  # nothing was written
        blocks = area.ioctl(4, 0)
        assert area.readblocks(blocks, bytearray(4)) == _EINVAL
        assert area.readblocks(blocks - 1, bytearray(8), _BLOCK - 4) == _EINVAL
        assert area.writeblocks(blocks, bytearray(4)) == _EINVAL
        assert area.ioctl(6, blocks) == _EINVAL
        assert zephyr.FlashArea(2, 2048).writeblocks(1, bytearray(4)) == _EINVAL  # half a page
        # the neighbouring area is untouched by all of it
        storage = _area("storage")
        assert _read(storage, 0, 16) == b"\xff" * 16
        # reads need no alignment
        assert area.writeblocks(0, bytearray(b"0123456789abcdef")) == 0
        assert _read(area, 0, 5, 3) == b"34567"
    finally:
        _done(tmp)


def test_a_block_write_through_an_erased_block_allocates_nothing():
    tmp, _ = _board()
    try:
        area = _area("image-1")
        data = bytearray(_BLOCK)
        for i in range(_BLOCK):
            data[i] = i & 0xFF
        out = bytearray(_BLOCK)
        area.writeblocks(0, data)  # warm up: every code path taken once
        area.readblocks(0, out)
        lock = getattr(micropython, "heap_lock", None)
        if lock is not None:
            lock()
        try:
            for block in range(1, 5):
                area.writeblocks(block, data)
                area.readblocks(block, out)
        finally:
            if lock is not None:
                micropython.heap_unlock()
        assert out == data
    finally:
        _done(tmp)
