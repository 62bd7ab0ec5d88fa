# The MCUboot board adapter (nRF-class chips, MicroPython on Zephyr) and its secondary slot: the
# only module of the agent that touches an MCUboot board's flash, always lazily, never at import.
#
# MCUboot boots the primary slot (image-0). An update goes to the secondary slot (image-1); a
# trailer at the end of the secondary asks MCUboot to swap the two at the next reset: a test
# swap (an image that has not set image_ok in the primary's trailer before the following reset
# is swapped back) or, with "mcuboot_permanent", a permanent one. The slots are zephyr.FlashArea
# block devices: readblocks/writeblocks/ioctl RETURN 0 or a negative errno (they do not raise),
# and writeblocks(block, buf) without an offset erases one block only, however long buf is: so
# write() erases each 4096-byte block with ioctl(6, n) just ahead of the write, then writes the
# whole buffer with an offset (no second erase). Nothing is erased before begin() has checked
# the size. A non-zero code or an OSError is an OTAError with reason flash.
#
# How large an image may be (MCUboot's boot_trailer_sz() in bootutil_area.c, app_max_size() in
# swap_move.c / swap_scratch.c, and Zephyr's MCUboot CMakeLists.txt, which sizes the sector count
# from the slot with BOOT_MAX_IMG_SECTORS_AUTO): with A the profile's write_align (BOOT_MAX_ALIGN;
# the flash's own write size is 4 on nRF52/nRF91, so using A for the status entries too errs on
# the small side) and N = the larger slot's size / 4096,
#   trailer = N * 3 * A           swap status: 3 entries per sector (move and scratch)
#           + 4 * A               swap_info, copy_done, image_ok, swap_size, each padded to A
#           + max(16, A)          the magic, padded to A
#   move:    the trailer rounded up to whole sectors, and one spare sector that the primary
#            slot gives to the move: room = min(primary - trailer - 4096, secondary - trailer)
#   scratch: room = min(primary, secondary) - trailer - pad, where pad makes room in the
#            trailer's first sector for the scratch area's own trailer (3 * A + 4 * A + magic).
#
# What the agent checks on the device before it asks for the swap (validate()): the header
# (magic 0x96f3b83d, ih_hdr_size, ih_img_size), the protected (0x6908) and unprotected (0x6907)
# TLV areas, the SHA-256 TLV (0x10) over header, payload and protected TLVs, and that the image
# is exactly the downloaded length. Signatures are left to MCUboot, which checks them before it
# swaps (the agent carries no ECDSA): an image signed with another key stays where it is, and
# the board keeps running its current image.

import struct

from micropython import const

from fota.core import errors

_BLOCK = const(4096)
_HEADER = const(32)
_TEST = const(2)  # BOOT_SWAP_TYPE_TEST: run once, swapped back unless confirmed
_PERM = const(3)  # BOOT_SWAP_TYPE_PERM
_ERASED = const(0xFF)
# boot_img_magic when BOOT_MAX_ALIGN is 8; for 16 and 32 a u16 of the alignment, then _TAIL
_MAGIC = const(b"\x77\xc2\x95\xf3\x60\xd2\xef\x7f\x35\x52\x50\x0f\x2c\xb6\x79\x80")
_TAIL = const(b"\x2d\xe1\x5d\x29\x41\x0b\x8d\x77\x67\x9c\x11\x0f\x1f\x8a")


def _flash(what, rc):
    return errors.OTAError(errors.FLASH, "%s failed: %s" % (what, rc))


def _bad(text):
    return errors.OTAError(errors.VERIFY, text)


class Board:
    """cfg: the board profile or the agent's checked config: "swap" ("move" or "scratch"),
    "write_align" (8, 16 or 32), and from ota.json "mcuboot_permanent" and "wifi"."""

    def __init__(self, cfg):
        self.swap = cfg.get("swap", "move")
        self.align = cfg.get("write_align", 8)
        self.permanent = cfg.get("mcuboot_permanent", False)
        if self.swap not in ("move", "scratch"):
            raise errors.OTAError(errors.CONFIG, "board.json: swap must be move or scratch")
        if self.align not in (8, 16, 32):
            raise errors.OTAError(errors.CONFIG, "board.json: write_align must be 8, 16 or 32")
        if cfg.get("wifi"):  # the port has no network.WLAN on these boards
            raise errors.OTAError(
                errors.CONFIG, "ota.json: wifi: a Zephyr board's network is the application's"
            )

    def _open(self, label, other=None):
        import zephyr  # pyright: ignore[reportMissingImports]  (the zephyr port only)

        try:
            dev = zephyr.FlashArea(*zephyr.FlashArea.areas[label])
        except (KeyError, ValueError, OSError) as exc:
            raise errors.OTAError(errors.FLASH, "no flash area %s: %r" % (label, exc)) from None
        return McubootSlot(dev, label, self.swap, self.align, self.permanent, other)

    def slot(self):
        return self._open("image-1", self._open("image-0").end)

    def running_label(self):
        return "image-0"  # MCUboot's swap modes always run the primary slot

    def next_boot(self):
        """image-1 when a swap is requested (MCUboot moves it into image-0), else image-0."""
        return "image-1" if self._open("image-1").state()[0] else "image-0"

    def running_version(self):
        """The version in the primary slot's image header (ih_ver)."""
        return self._open("image-0").head(bytearray(_HEADER))[1]

    def confirm(self):
        """Set image_ok in the primary slot's trailer, as boot_set_confirmed() does: only when
        its magic is good and image_ok unset (an image flashed without a trailer cannot be
        swapped back, and one already confirmed stays so)."""
        slot = self._open("image-0")
        good, ok = slot.state()
        if good and ok == _ERASED:
            slot.mark(slot.ok, 1)

    def rollback(self):
        """Boot the secondary slot's image at the next reset, for good -> its version.

        MCUboot has no rollback call: after a swap the secondary slot holds the previous image,
        so a permanent swap request for it (after checking it as an update) goes back."""
        slot = self.slot()
        version = slot.validate(None, bytearray(_BLOCK))
        slot.activate(True)
        return version

    def reset(self):
        import machine

        machine.reset()

    def network_up(self, wifi=None, clock=None):
        """The application brings the network up on these boards (a wifi section is refused at
        start): -> True, and the health check rests on reaching the cloud."""
        return not wifi


class McubootSlot:
    """An MCUboot slot over a block device with zephyr.FlashArea's interface. other: the size
    of the primary slot (bytes), for the room a swap needs; by default the same as this one."""

    def __init__(self, dev, label="image-1", swap="move", align=8, permanent=False, other=None):
        self.dev = dev
        self.label = label
        self.align = align
        self.permanent = permanent
        self.size = 0
        try:
            unit = dev.ioctl(5, 0)
            end = dev.ioctl(4, 0) * unit
        except OSError as exc:
            raise _flash("sizing " + label, exc) from None
        if unit != _BLOCK:
            raise errors.OTAError(errors.CONFIG, "%s: blocks of %r bytes, not 4096" % (label, unit))
        self.end = end
        if other is None:
            other = end
        magic = 16 if align < 16 else align
        info = 4 * align + magic
        trailer = max(end, other) // _BLOCK * 3 * align + info
        if swap == "move":
            trailer = (trailer + _BLOCK - 1) // _BLOCK * _BLOCK
            room = min(other - _BLOCK, end) - trailer
        else:
            pad = 3 * align + info - (trailer - (trailer - 1) // _BLOCK * _BLOCK)
            room = min(other, end) - trailer - max(pad, 0)
        self.trailer = trailer
        self.capacity = room
        # the trailer's fields, as boot_image_ok_off() and its neighbours place them
        self.magic = end - magic
        self.ok = (end - 16 - align) // align * align
        self.info = self.ok - 2 * align  # swap_info; copy_done lies between

    # -- the engine's interface

    def begin(self, size):
        """Check that an image of `size` bytes fits beside MCUboot's trailer. A swap request
        still in the slot (activated, but the board was not reset) is erased first: MCUboot
        must not try to swap in a half-written image after a power cut."""
        if size > self.capacity:
            raise errors.OTAError(
                errors.NO_SPACE,
                "image of %d bytes does not fit %s: %d bytes, MCUboot's trailer taken off"
                % (size, self.label, self.capacity),
            )
        self.size = size
        if self.state()[0]:
            self._erase(self.end // _BLOCK - 1)

    def write(self, block, buf):
        """Erase, then write whole blocks from `block` on; len(buf) is a multiple of 4096.
        Allocates nothing on success (the download's chunk loop calls it)."""
        dev = self.dev
        n = len(buf) // _BLOCK
        i = 0
        try:
            rc = 0
            while i < n and not rc:
                rc = dev.ioctl(6, block + i)
                i += 1
            if not rc:
                rc = dev.writeblocks(block, buf, 0)
        except OSError as exc:
            rc = exc
        if rc:
            raise self.failed(block, rc)

    def failed(self, block, rc):
        return _flash("writing block %d of %s" % (block, self.label), rc)

    def read(self, block, buf):
        self._get(block * _BLOCK, buf)

    def _get(self, pos, buf):
        try:
            rc = self.dev.readblocks(pos // _BLOCK, buf, pos % _BLOCK)
        except OSError as exc:
            rc = exc
        if rc:
            raise _flash("reading %s at %d" % (self.label, pos), rc)
        return buf

    def _erase(self, page):
        try:
            rc = self.dev.ioctl(6, page)
        except OSError as exc:
            rc = exc
        if rc:
            raise _flash("erasing the trailer of " + self.label, rc)

    def mark(self, pos, value):
        """Write one trailer field at pos: value, padded with 0xFF to write_align; read back."""
        buf = bytearray(b"\xff" * self.align)
        buf[0] = value
        self._put(pos, buf)

    def _put(self, pos, buf):
        try:
            rc = self.dev.writeblocks(pos // _BLOCK, buf, pos % _BLOCK)
        except OSError as exc:
            rc = exc
        if rc:
            raise _flash("writing the trailer of " + self.label, rc)
        if self._get(pos, bytearray(len(buf))) != buf:
            raise errors.OTAError(errors.FLASH, "the trailer of %s reads back wrong" % self.label)

    def state(self):
        """-> (the trailer's magic is MCUboot's, its image_ok byte)."""
        buf = self._get(self.ok, bytearray(self.end - self.ok))
        return buf[-16:] == self._magic()[-16:], buf[0]

    def _magic(self):
        # boot_write_magic()'s bytes: the magic at the end of a field of max(16, align) bytes
        if self.align == 8:
            return _MAGIC
        return b"\xff" * (self.align - 16) + struct.pack("<H", self.align) + _TAIL

    def sha_prefix(self, size):
        """How many leading bytes validate() may take as a SHA-256 hashed while they streamed
        (fota.core.digest's prefix=): the hashed part ends before the TLVs, within the last
        block of a download."""
        return size - _BLOCK

    # -- the image

    def head(self, buf):
        """-> (the header's fields, the version text), from the 32 bytes at the slot's start."""
        f = struct.unpack_from("<IIHHIIBBHI", self._get(0, buf))
        if f[0] != 0x96F3B83D:
            raise _bad("%s: header magic is 0x%08x, not 0x96f3b83d" % (self.label, f[0]))
        version = "%d.%d.%d" % f[6:9]
        if f[9]:
            version += "+%d" % f[9]
        return f, version

    def validate(self, size, scratch, sha=True, prefix=None):
        """Check the MCUboot image in the slot against the `size` bytes downloaded (None: take
        its own length); -> its version. Always hashes it: MCUboot would find a bad hash only
        after the reset. prefix: (SHA-256 object, n) of the first n bytes, hashed while they
        streamed. Raises OTAError: verify naming the field, flash."""
        mv = memoryview(scratch)[:_BLOCK]
        f, version = self.head(mv[:_HEADER])
        hdr, prot, end = f[2], f[3], f[2] + f[4]
        limit = self.end if size is None else size
        if hdr < _HEADER or end + 4 > limit:
            raise _bad("ih_hdr_size %d + ih_img_size %d run past the %d bytes" % (hdr, f[4], limit))
        if prot:
            kind, total = struct.unpack("<HH", self._get(end, mv[:4]))
            if kind != 0x6908 or total != prot:
                raise _bad(
                    "protected TLV info: magic 0x%04x, %d bytes (ih_protect_tlv_size %d)"
                    % (kind, total, prot)
                )
            end += prot
        kind, total = struct.unpack("<HH", self._get(end, mv[:4]))
        if kind != 0x6907 or total < 4:
            raise _bad("TLV info magic at %d is 0x%04x, not 0x6907" % (end, kind))
        if size is not None and end + total != size:
            raise _bad("the image is %d bytes long, the download %d" % (end + total, size))
        stated = None
        pos = end + 4
        while pos + 4 <= end + total:
            kind, n = struct.unpack("<HH", self._get(pos, mv[:4]))
            if kind == 0x10 and n == 32 and pos + 36 <= end + total:
                stated = bytes(self._get(pos + 4, mv[:32]))
            pos += 4 + n
        if stated is None or pos != end + total:
            raise _bad("no SHA-256 TLV (0x10) in the TLV area at %d" % end)
        if prefix is not None and prefix[1] <= end:
            h, pos = prefix
        else:
            h, pos = _sha256(), 0
        while pos < end:
            n = min(_BLOCK - pos % _BLOCK, end - pos)
            h.update(self._get(pos, mv[:n]))
            pos += n
        if h.digest() != stated:
            raise _bad("the SHA-256 TLV does not match bytes 0..%d of %s" % (end, self.label))
        self.size = end + total
        return version

    def activate(self, permanent=None):
        """Request the swap: the secondary slot's trailer written as boot_set_pending() does
        (magic, then image_ok for a permanent request, then swap_info), each field padded with
        0xFF to write_align. The pages of the trailer that the image did not fill are erased
        first (an old trailer may be there); the whole trailer is read back."""
        if permanent is None:
            permanent = self.permanent
        start = self.end - self.trailer
        if self.size > start:
            raise errors.OTAError(
                errors.NO_SPACE, "the image overlaps the trailer in " + self.label
            )
        page = max((self.size + _BLOCK - 1) // _BLOCK, start // _BLOCK)
        while page < self.end // _BLOCK:
            self._erase(page)
            page += 1
        if self._get(self.info, bytearray(self.end - self.info)) != b"\xff" * (
            self.end - self.info
        ):
            raise errors.OTAError(errors.FLASH, "the trailer of %s is not erased" % self.label)
        self._put(self.magic, self._magic())
        if permanent:
            self.mark(self.ok, 1)
        self.mark(self.info, _PERM if permanent else _TEST)  # image 0 in the high nibble


def _sha256():
    try:
        import hashlib

        return hashlib.sha256()
    except (ImportError, AttributeError):  # a port without hashlib (or its sha256)
        from fota.core.sha256 import sha256

        return sha256()
