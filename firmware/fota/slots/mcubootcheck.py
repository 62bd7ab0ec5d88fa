# The MCUboot image in a slot (fota.slots.mcuboot.McubootSlot) checked, and the swap requested:
# loaded after a download, once the engine's code has left the heap, and for the board's
# confirm and running version.
#
# validate(): the header (magic 0x96f3b83d, ih_hdr_size, ih_img_size), the protected (0x6908)
# and unprotected (0x6907) TLV areas, the SHA-256 TLV (0x10) over header, payload and protected
# TLVs, and that the image ends exactly where the download did; any mismatch is an OTAError
# (verify) naming the field. Signatures are MCUboot's to check, at the next boot.
#
# activate(): the trailer at the end of the secondary slot written as MCUboot's
# boot_set_pending() writes it: the magic, then image_ok for a permanent request, then
# swap_info (BOOT_SWAP_TYPE_TEST 2 or PERM 3, image 0 in the high nibble), each field padded
# with 0xFF to write_align, in that order, so that a power cut in between leaves a request
# MCUboot reads as a test swap or none. The trailer's pages the image did not fill are erased
# first (a finished swap leaves an old trailer there); every field is read back.

import struct

from micropython import const

from fota.core import errors

_BLOCK = const(4096)
_HEADER = const(32)
_TEST = const(2)
_PERM = const(3)


def _bad(text):
    return errors.OTAError(errors.VERIFY, text)


def head(slot, buf):
    """-> (the header's fields, the version text), from the 32 bytes at the slot's start; the
    version is ih_ver as major.minor.revision, with +build when build is not 0."""
    f = struct.unpack_from("<IIHHIIBBHI", slot._get(0, buf))
    if f[0] != 0x96F3B83D:
        raise _bad("%s: header magic is 0x%08x, not 0x96f3b83d" % (slot.label, f[0]))
    version = "%d.%d.%d" % f[6:9]
    if f[9]:
        version += "+%d" % f[9]
    return f, version


def validate(slot, size, scratch, prefix=None):
    """-> the version of the image in slot, `size` bytes long (None: its own length). prefix:
    (SHA-256 object, n) of the first n bytes, hashed while they streamed."""
    get = slot._get
    mv = memoryview(scratch)[:_BLOCK]
    f, version = head(slot, mv[:_HEADER])
    hdr, prot, end = f[2], f[3], f[2] + f[4]
    limit = slot.end if size is None else size
    if hdr < _HEADER or end + 4 > limit:
        raise _bad("ih_hdr_size %d + ih_img_size %d run past the %d bytes" % (hdr, f[4], limit))
    if prot:
        kind, total = struct.unpack("<HH", get(end, mv[:4]))
        if kind != 0x6908 or total != prot:
            raise _bad(
                "protected TLV info: magic 0x%04x, %d bytes (ih_protect_tlv_size %d)"
                % (kind, total, prot)
            )
        end += prot
    kind, total = struct.unpack("<HH", get(end, mv[:4]))
    if kind != 0x6907 or total < 4:
        raise _bad("TLV info magic at %d is 0x%04x, not 0x6907" % (end, kind))
    if size is not None and end + total != size:
        raise _bad("the image is %d bytes long, the download %d" % (end + total, size))
    stated = None
    pos = end + 4
    while pos + 4 <= end + total:
        kind, n = struct.unpack("<HH", get(pos, mv[:4]))
        if kind == 0x10 and n == 32 and pos + 36 <= end + total:
            stated = bytes(get(pos + 4, mv[:32]))
        pos += 4 + n
    if stated is None or pos != end + total:
        raise _bad("no SHA-256 TLV (0x10) in the TLV area at %d" % end)
    if prefix is not None and prefix[1] <= end:
        h, pos = prefix
    else:
        h, pos = _sha256(), 0
    while pos < end:
        n = min(_BLOCK - pos % _BLOCK, end - pos)
        h.update(get(pos, mv[:n]))
        pos += n
    if h.digest() != stated:
        raise _bad("the SHA-256 TLV does not match bytes 0..%d of %s" % (end, slot.label))
    slot.size = end + total
    return version


def activate(slot, permanent):
    """Request the swap of the image in slot (validated: its size known)."""
    end = slot.end
    start = end - slot.trailer
    if slot.size > start:
        raise errors.OTAError(errors.NO_SPACE, "the image overlaps the trailer in " + slot.label)
    page = max((slot.size + _BLOCK - 1) // _BLOCK, start // _BLOCK)
    while page < end // _BLOCK:
        slot._erase(page)
        page += 1
    if slot._get(slot.info, bytearray(end - slot.info)) != b"\xff" * (end - slot.info):
        raise errors.OTAError(errors.FLASH, "the trailer of %s is not erased" % slot.label)
    _put(slot, slot.magic, slot._magic())
    if permanent:
        mark(slot, slot.ok, 1)
    mark(slot, slot.info, _PERM if permanent else _TEST)


def mark(slot, pos, value):
    """Write one trailer field at pos: value, padded with 0xFF to write_align; read back."""
    buf = bytearray(b"\xff" * slot.align)
    buf[0] = value
    _put(slot, pos, buf)


def _put(slot, pos, buf):
    try:
        rc = slot.dev.writeblocks(pos // _BLOCK, buf, pos % _BLOCK)
    except OSError as exc:
        rc = exc
    if rc:
        raise errors.OTAError(
            errors.FLASH, "writing the trailer of %s failed: %s" % (slot.label, rc)
        )
    if slot._get(pos, bytearray(len(buf))) != buf:
        raise errors.OTAError(errors.FLASH, "the trailer of %s reads back wrong" % slot.label)


def _sha256():
    try:
        import hashlib

        return hashlib.sha256()
    except (ImportError, AttributeError):  # a port without hashlib (or its sha256)
        from fota.core.sha256 import sha256

        return sha256()
