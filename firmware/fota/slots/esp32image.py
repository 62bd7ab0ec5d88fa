# The agent's own check of an ESP32 app image in a slot, before it switches the boot partition.
#
# ESP-IDF's set_boot() validates the image too, but only says ESP_ERR_OTA_VALIDATE_FAILED; this
# gives the reason (and the image's version) first. Format: esp_image_header_t (24 bytes: magic
# 0xE9, segment count, SPI mode/speed, entry, extended header with chip_id u16 at 12 and
# hash_appended u8 at 23), then segments (load_addr u32, data_len u32, data), padding so that one
# XOR checksum byte ends a 16-byte line, then an optional SHA-256 of everything before it. The
# first segment's data starts with esp_app_desc_t (magic 0xABCD5432, version char[32] at +16).
#
# The checksum byte is not computed here (a byte loop in Python is too slow on a device);
# set_boot() checks it. Reads go through part.readblocks(block, buf, offset) into the caller's
# scratch buffer (>= 4096 bytes); a failed read is a FlashError, a bad image a VerifyError.
#
# The appended SHA-256 covers the image up to the checksum line. The download engine hashes that
# prefix while it streams (fota.core.digest, prefix=), so check() normally reads back only the few
# bytes between the end of the streamed prefix and the hash; without it (or when the image is
# shorter than the prefix streamed) it re-reads the slot from the start.

import binascii
import hashlib
import struct

from micropython import const

from fota.core.errors import FLASH, VERIFY, OTAError

_BLOCK = const(4096)
_IMAGE_MAGIC = const(0xE9)
_MAX_SEGMENTS = const(16)
_HEADER_LEN = const(24)
_DESC_OFFSET = const(32)  # header + the first segment's 8-byte header
_DESC_LEN = const(256)  # sizeof(esp_app_desc_t)
_DESC_MAGIC = 0xABCD5432  # not const(): a big int on 32-bit ports
_HASH_LEN = const(32)


def _scratch(scratch):
    if len(scratch) < _BLOCK:
        raise ValueError("scratch buffer smaller than 4096 bytes")
    return memoryview(scratch)[:_BLOCK]


def _read(part, mv, pos, n):
    """Bytes [pos, pos + n) of the slot (n <= 4096), as mv[:n]."""
    buf = mv[:n]
    part.readblocks(pos // _BLOCK, buf, pos % _BLOCK)
    return buf


def _version(desc):
    """The version in the 48 bytes desc (the start of esp_app_desc_t); VerifyError if invalid."""
    magic = struct.unpack_from("<I", desc, 0)[0]
    if magic != _DESC_MAGIC:
        raise OTAError(VERIFY, "no app descriptor: magic 0x%08x, expected 0xabcd5432" % magic)
    raw = bytes(desc[16:48])
    end = raw.find(b"\x00")
    if end < 0:
        raise OTAError(VERIFY, "app descriptor version is not NUL-terminated")
    if end == 0:
        raise OTAError(VERIFY, "app descriptor version is empty")
    for b in raw[:end]:
        if b < 0x20 or b > 0x7E:
            raise OTAError(VERIFY, "app descriptor version is not printable ASCII: %r" % raw[:end])
    return raw[:end].decode()


def _header(buf, chip_id):
    """(segment count, hash_appended) of a 24-byte image header; VerifyError if unusable."""
    if buf[0] != _IMAGE_MAGIC:
        raise OTAError(VERIFY, "bad image magic 0x%02x, expected 0xe9" % buf[0])
    count = buf[1]
    if count == 0 or count > _MAX_SEGMENTS:
        raise OTAError(VERIFY, "bad segment count %d, expected 1..16" % count)
    chip = buf[12] | (buf[13] << 8)
    if chip_id is not None and chip != chip_id:
        raise OTAError(
            VERIFY, "image is for chip id %d, this board is chip id %d" % (chip, chip_id)
        )
    return count, buf[23]


def check(part, length, chip_id, scratch, sha=True, prefix=None):
    """Check the image in bytes [0, length) of part; return its version string.

    length: the offer's size (the image may be shorter: trailing bytes are not checked).
    chip_id: the board's esp_image_header_t chip id (0 esp32, 2 esp32s2, 5 esp32c3, 9 esp32s3 ...).
    sha: check the appended SHA-256 (set_boot() repeats that check in ESP-IDF, so callers that
    rely on it may skip this one). prefix: (hashlib SHA-256 object, n), the hash of the image's
    first n bytes as written, which check() finishes (and consumes); else the slot is re-read.
    Raises VerifyError with the reason, FlashError when a read fails.
    """
    mv = _scratch(scratch)
    try:
        return _check(part, length, chip_id, mv, sha, prefix)
    except OSError as exc:
        raise OTAError(FLASH, "reading the image back failed: %s" % exc)


def _hash_from(part, h, start, end, mv):
    """Feed bytes [start, end) of part to h, through mv (4096 bytes)."""
    while start < end:
        n = min(_BLOCK - start % _BLOCK, end - start)
        h.update(_read(part, mv, start, n))
        start += n


def _check(part, length, chip_id, mv, sha, prefix):
    if length < _HEADER_LEN:
        raise OTAError(VERIFY, "image length %d is shorter than the 24-byte image header" % length)
    count, hash_appended = _header(_read(part, mv, 0, _HEADER_LEN), chip_id)
    pos = _HEADER_LEN
    first = 0
    for i in range(count):
        if pos + 8 > length:
            raise OTAError(
                VERIFY,
                "segment %d header at offset %d runs past the image length %d" % (i, pos, length),
            )
        size = struct.unpack_from("<I", _read(part, mv, pos + 4, 4), 0)[0]
        pos += 8
        if size % 4:
            raise OTAError(VERIFY, "segment %d length %d is not a multiple of 4" % (i, size))
        if pos + size > length:
            raise OTAError(
                VERIFY,
                "segment %d data (%d bytes at offset %d) runs past the image length %d"
                % (i, size, pos, length),
            )
        if i == 0:
            first = size
        pos += size
    pos += 16 - pos % 16  # the checksum byte ends a 16-byte line
    end = pos + _HASH_LEN if hash_appended == 1 else pos
    if end > length:
        raise OTAError(
            VERIFY,
            "image needs %d bytes (checksum%s included), more than the length %d"
            % (end, " and SHA-256" if hash_appended == 1 else "", length),
        )
    if hash_appended == 1 and sha:
        if prefix is not None and prefix[1] <= pos:
            h, done = prefix
            _hash_from(part, h, done, pos, mv)  # the tail the stream could not know was in it
        else:
            from fota.core.digest import hash_slot

            h = hashlib.sha256()
            hash_slot(part.readblocks, pos, h, mv)
        computed = h.digest()
        stored = bytes(_read(part, mv, pos, _HASH_LEN))
        if computed != stored:
            raise OTAError(
                VERIFY,
                "appended SHA-256 mismatch: image has %s, computed %s"
                % (binascii.hexlify(stored).decode(), binascii.hexlify(computed).decode()),
            )
    if first < _DESC_LEN:
        raise OTAError(VERIFY, "first segment (%d bytes) too short for the app descriptor" % first)
    return _version(_read(part, mv, _DESC_OFFSET, 48))


def app_version(part, scratch):
    """The version in the app descriptor of the image at the start of part (e.g. the running
    slot). Checks only the image magic, segment count and descriptor; raises VerifyError."""
    mv = _scratch(scratch)
    try:
        buf = _read(part, mv, 0, _DESC_OFFSET + 48)
    except OSError as exc:
        raise OTAError(FLASH, "reading the image header failed: %s" % exc)
    _header(buf, None)
    first = struct.unpack_from("<I", buf, _HEADER_LEN + 4)[0]
    if first < _DESC_LEN:
        raise OTAError(VERIFY, "first segment (%d bytes) too short for the app descriptor" % first)
    return _version(buf[_DESC_OFFSET:])
