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
# The image check and the swap request are in fota.slots.mcubootcheck, loaded only when they
# run. It checks what the agent can on the device (header, TLV areas, SHA-256, length);
# signatures are left to MCUboot, which checks them before it swaps (the agent carries no ECDSA):
# an image signed with another key stays where it is, and the board keeps its current image.

import struct

from micropython import const

from fota.core import errors

_BLOCK = const(4096)
_ERASED = const(0xFF)
# boot_img_magic when BOOT_MAX_ALIGN is 8; for 16 and 32 a u16 of the alignment, then _TAIL
_MAGIC = const(b"\x77\xc2\x95\xf3\x60\xd2\xef\x7f\x35\x52\x50\x0f\x2c\xb6\x79\x80")
_TAIL = const(b"\x2d\xe1\x5d\x29\x41\x0b\x8d\x77\x67\x9c\x11\x0f\x1f\x8a")


def _flash(what, rc):
    return errors.OTAError(errors.FLASH, "%s failed: %s" % (what, rc))


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
        from fota.slots.mcubootcheck import head

        return head(self._open("image-0"), bytearray(32))[1]

    def confirm(self):
        """Set image_ok in the primary slot's trailer, as boot_set_confirmed() does: only when
        its magic is good and image_ok unset (an image flashed without a trailer cannot be
        swapped back, and one already confirmed stays so)."""
        slot = self._open("image-0")
        good, ok = slot.state()
        if good and ok == _ERASED:
            from fota.slots.mcubootcheck import mark

            mark(slot, slot.ok, 1)

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

    # -- the image, checked and requested by fota.slots.mcubootcheck (loaded only then, after
    #    the download's code has left the heap)

    def validate(self, size, scratch, sha=True, prefix=None):
        """Check the MCUboot image in the slot against the `size` bytes downloaded (None: take
        its own length); -> its version. Always hashes it (sha is ignored): MCUboot would find
        a bad hash only after the reset. Raises OTAError: verify naming the field, flash."""
        from fota.slots import mcubootcheck

        return mcubootcheck.validate(self, size, scratch, prefix)

    def activate(self, permanent=None):
        """Request the swap (test, or permanent as configured)."""
        from fota.slots import mcubootcheck

        mcubootcheck.activate(self, self.permanent if permanent is None else permanent)
