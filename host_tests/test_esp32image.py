# fota.slots.esp32image: the agent's own check of an ESP32 app image in a slot, with the reason.
#
# Images come from espidf.make_app_image (esptool parses them); broken ones are made by editing
# bytes of a valid one, re-computing the appended SHA-256 where only one fault is wanted. With
# size=8192 the layout is: header 0..24, segment 0 header at 24 (512 bytes of data from 32, the
# app descriptor first), segment 1 header at 544 (7592 bytes from 552), checksum byte at 8159,
# SHA-256 at 8160..8192.

import hashlib
import struct

import esp32
import espidf
from dual import fails, new_board, raises, rmtree

from fota.core.errors import FLASH, VERIFY
from fota.slots.esp32image import app_version, check

RUN_ON_MICROPYTHON = True

_ESP32 = 0  # esp_image_header_t.chip_id of the esp32 board profile


def _board():
    tmp, _ = new_board(version="1.0.0")
    return tmp, esp32.Partition(esp32.Partition.RUNNING).get_next_update()


def _done(tmp):
    esp32.detach()
    rmtree(tmp)


def _write(slot, image):
    n = (len(image) + 4095) // 4096 * 4096
    buf = bytearray(b"\xff" * n)
    buf[: len(image)] = image
    slot.writeblocks(0, buf)


def _rehash(image):
    """The image with its appended SHA-256 recomputed after an edit."""
    image[-32:] = hashlib.sha256(bytes(image[:-32])).digest()
    return image


def _image(version="2.0.0", **kwargs):
    return bytearray(espidf.make_app_image(version, **kwargs))


def _set_u32(image, pos, value):
    struct.pack_into("<I", image, pos, value)


def _fails(slot, image, length=None, chip_id=_ESP32):
    """The VerifyError message check() gives for image written to slot."""
    _write(slot, image)
    if length is None:
        length = len(image)
    exc = fails(VERIFY, check, slot, length, chip_id, bytearray(4096))
    assert exc.reason == "verify"
    return exc.message


def test_valid_image_returns_its_version():
    tmp, slot = _board()
    try:
        image = _image("2.0.0")
        _write(slot, image)
        assert check(slot, len(image), _ESP32, bytearray(4096)) == "2.0.0"
        assert check(slot, len(image) + 100, _ESP32, bytearray(8192)) == "2.0.0"  # offer padded
        image = _image("2.0.1-rc1", hash_appended=False, size=20000)
        assert image[23] == 0 and len(image) % 16 == 0
        _write(slot, image)
        assert check(slot, len(image), _ESP32, bytearray(4096)) == "2.0.1-rc1"
        slot.set_boot()  # the bootloader's oracle agrees
    finally:
        _done(tmp)


def test_other_chips_images_are_checked_against_their_id():
    tmp, slot = _board()
    try:
        image = _image("3.0.0", chip="esp32s3")
        _write(slot, image)
        assert check(slot, len(image), 9, bytearray(4096)) == "3.0.0"
        message = _fails(slot, image)
        assert message == "image is for chip id 9, this board is chip id 0"
    finally:
        _done(tmp)


def test_bad_magic_and_segment_count():
    tmp, slot = _board()
    try:
        image = _rehash(_image())
        image[0] = 0xE8
        assert _fails(slot, _rehash(image)) == "bad image magic 0xe8, expected 0xe9"
        image = _image()
        image[1] = 0
        assert _fails(slot, _rehash(image)) == "bad segment count 0, expected 1..16"
        image[1] = 17
        assert _fails(slot, _rehash(image)) == "bad segment count 17, expected 1..16"
        message = _fails(slot, _image()[:20])
        assert message == "image length 20 is shorter than the 24-byte image header"
    finally:
        _done(tmp)


def test_segments_past_the_length_or_misaligned():
    tmp, slot = _board()
    try:
        image = _image()
        _set_u32(image, 28, 8160)  # segment 0 ends at 8192: segment 1's header is past the end
        message = _fails(slot, _rehash(image))
        assert message == "segment 1 header at offset 8192 runs past the image length 8192"
        image = _image()
        _set_u32(image, 548, 7592 + 64)
        message = _fails(slot, _rehash(image))
        assert (
            message == "segment 1 data (7656 bytes at offset 552) runs past the image length 8192"
        )
        image = _image()
        _set_u32(image, 548, 7590)
        assert _fails(slot, _rehash(image)) == "segment 1 length 7590 is not a multiple of 4"
        message = _fails(slot, _image(), length=548)  # the offer's size smaller than the image
        assert message == "segment 1 header at offset 544 runs past the image length 548"
        message = _fails(slot, _image(), length=8000)
        assert (
            message == "segment 1 data (7592 bytes at offset 552) runs past the image length 8000"
        )
    finally:
        _done(tmp)


def test_image_longer_than_the_offer():
    tmp, slot = _board()
    try:
        message = _fails(slot, _image(), length=8191)
        assert message == (
            "image needs 8192 bytes (checksum and SHA-256 included), more than the length 8191"
        )
        message = _fails(slot, _image(), length=8160)  # the checksum fits, the hash does not
        assert message.startswith("image needs 8192 bytes")
        image = _image(hash_appended=False)
        assert len(image) == 8160
        message = _fails(slot, image, length=8159)
        assert message == "image needs 8160 bytes (checksum included), more than the length 8159"
    finally:
        _done(tmp)


def test_appended_sha256_mismatch():
    tmp, slot = _board()
    try:
        image = _image()
        stored = image[-32:]
        image[1000] ^= 0x01  # one bit of segment 1
        computed = hashlib.sha256(bytes(image[:-32])).digest()
        message = _fails(slot, image)
        assert message == "appended SHA-256 mismatch: image has %s, computed %s" % (
            bytes(stored).hex(),
            computed.hex(),
        )
        image = _image()
        image[-1] ^= 0x80  # the stored hash itself
        assert _fails(slot, image).startswith("appended SHA-256 mismatch: image has ")
    finally:
        _done(tmp)


def _prefix(image, n):
    h = hashlib.sha256()
    h.update(bytes(image[:n]))
    return h, n


def test_streamed_prefix_hash_is_finished_from_the_slot():
    # The engine hashes the image while it streams; check() reads back only what follows that
    # prefix up to the appended hash (8160 here), or everything when the prefix runs past it.
    tmp, slot = _board()
    try:
        image = _image()
        _write(slot, image)
        for n in (0, 4096, 8160):
            assert check(slot, len(image), _ESP32, bytearray(4096), True, _prefix(image, n)) == (
                "2.0.0"
            )
        longer = image + bytearray(b"\xff" * 8192)  # an offer longer than the image
        _write(slot, longer)
        assert check(slot, len(longer), _ESP32, bytearray(4096), True, _prefix(longer, 12288))
        wrong = bytearray(image)
        wrong[100] ^= 1  # the bytes the stream saw differ from the image's own hash
        prefix = _prefix(wrong, 4096)
        exc = fails(VERIFY, check, slot, len(image), _ESP32, bytearray(4096), True, prefix)
        assert exc.message.startswith("appended SHA-256 mismatch")
    finally:
        _done(tmp)


def test_checksum_byte_is_left_to_set_boot():
    tmp, slot = _board()
    try:
        image = _image(hash_appended=False)
        image[1000] ^= 0x01  # no hash to catch it; only the XOR checksum would
        _write(slot, image)
        assert check(slot, len(image), _ESP32, bytearray(4096)) == "2.0.0"
        exc = raises(OSError, slot.set_boot)
        assert "ESP_ERR_OTA_VALIDATE_FAILED" in str(exc)
    finally:
        _done(tmp)


def _assemble(segments, version_field=None):
    """A one-off image from a valid header, with the given segments' data and a correct
    checksum and SHA-256, to build faults that editing cannot."""
    out = bytearray(_image()[:24])
    out[1] = len(segments)
    for data in segments:
        out += struct.pack("<II", 0x3F400020, len(data))
        out += data
    if version_field is not None:
        out[48:80] = version_field
    out += bytes(15 - len(out) % 16)
    checksum = 0xEF
    for data in segments:
        for b in data:
            checksum ^= b
    out.append(checksum)
    out += hashlib.sha256(bytes(out)).digest()
    return out


def test_app_descriptor_faults():
    tmp, slot = _board()
    try:
        desc = _image()[32:288]
        good = _assemble([desc])
        _write(slot, good)
        assert check(slot, len(good), _ESP32, bytearray(4096)) == "2.0.0"
        slot.set_boot()  # the assembled image is valid for the bootloader too

        image = _image()
        image[32] ^= 0xFF
        message = _fails(slot, _rehash(image))
        assert message == "no app descriptor: magic 0xabcd54cd, expected 0xabcd5432"
        message = _fails(slot, _assemble([desc], b"x" * 32))
        assert message == "app descriptor version is not NUL-terminated"
        message = _fails(slot, _assemble([desc], bytes(32)))
        assert message == "app descriptor version is empty"
        message = _fails(slot, _assemble([desc], b"1.0\x01" + bytes(28)))
        assert message.startswith("app descriptor version is not printable ASCII")
        message = _fails(slot, _assemble([desc[:252]]))
        assert message == "first segment (252 bytes) too short for the app descriptor"
    finally:
        _done(tmp)


def test_app_version_of_the_running_slot_and_an_erased_one():
    tmp, slot = _board()
    try:
        running = esp32.Partition(esp32.Partition.RUNNING)
        assert app_version(running, bytearray(4096)) == "1.0.0"
        exc = fails(VERIFY, app_version, slot, bytearray(4096))  # erased: all 0xFF
        assert exc.message == "bad image magic 0xff, expected 0xe9"
        image = _image("9.9.9", chip="esp32c3")  # app_version does not check the chip
        image[33] = 0x00
        _write(slot, image)
        exc = fails(VERIFY, app_version, slot, bytearray(4096))
        assert exc.message.startswith("no app descriptor: magic 0xabcd00")
        _write(slot, _image("9.9.9", chip="esp32c3"))
        assert app_version(slot, bytearray(4096)) == "9.9.9"
    finally:
        _done(tmp)


class _BrokenPart:
    def readblocks(self, block, buf, offset=0):
        raise OSError(5, "EIO")


def test_read_failure_is_a_flash_error_and_scratch_must_hold_a_block():
    exc = fails(FLASH, check, _BrokenPart(), 8192, _ESP32, bytearray(4096))
    assert exc.message.startswith("reading the image back failed")
    fails(FLASH, app_version, _BrokenPart(), bytearray(4096))
    raises(ValueError, check, _BrokenPart(), 8192, _ESP32, bytearray(100))
