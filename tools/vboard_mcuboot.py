# The emulated MCUboot of the virtual nRF boards: what MCUboot does at a reset, run on the board's
# flash file between two runs of the firmware (tools/vboard_nrf.py).
#
# Modelled on MCUboot's bootutil (boot/bootutil/src: bootutil_public.c, loader.c, swap_move.c,
# swap_misc.c) for one image pair in swap-move or swap-scratch mode:
#   - each slot's trailer, read as boot_read_swap_state() does: the magic (good, unset = erased,
#     bad), swap_info (its low nibble the swap type), copy_done and image_ok (set = 0x01,
#     unset = 0xff, anything else bad), each field BOOT_MAX_ALIGN ("write_align") bytes, from the
#     end: magic (16), image_ok, copy_done, swap_info, swap_size;
#   - the swap type from boot_swap_tables: secondary magic good and image_ok unset: test; image_ok
#     set: permanent; primary magic good, image_ok unset and copy_done set: revert; else none;
#   - before a test, permanent or revert swap, the secondary image is validated (header, TLV
#     areas, the SHA-256 TLV, and the signature when the board has a key); an invalid image is
#     not swapped in and its slot is erased (boot_scramble_slot), a slot without an image header
#     only loses its trailer; an image too large for the swap mode is not swapped either;
#   - the swap exchanges the slots' image sectors and leaves the trailers as MCUboot does: the
#     secondary's erased, the primary's with magic, swap_info, swap_size and copy_done, image_ok
#     as well after a permanent swap or a revert;
#   - the primary image is validated at every boot (MCUBOOT_VALIDATE_PRIMARY_SLOT): an invalid one
#     is never booted, and with nothing to swap in the board is bricked (Bricked).
# Not modelled: the swap's progress (status) entries and resuming an interrupted swap. The
# emulated swap is atomic (the new flash replaces the old in one rename): a power cut during a
# swap is MCUboot's own problem, which its simulator tests; the agent only ever sees a swap done
# or not done. Nor: encrypted images, several image pairs, downgrade prevention, swap-offset.

import os
from pathlib import Path

import mcuboot_image
import mcuimage

import boards

SWAP_NONE, SWAP_TEST, SWAP_PERM, SWAP_REVERT = 1, 2, 3, 4
SWAP_NAMES = {SWAP_NONE: "none", SWAP_TEST: "test", SWAP_PERM: "permanent", SWAP_REVERT: "revert"}
MAGIC_SIZE = 16
FLAG_SET = 0x01
ERASED = 0xFF
WRITE_SIZE = 4  # the nRF flash's write-block-size: one swap status entry
PRIMARY, SECONDARY = "image-0", "image-1"


class Bricked(Exception):
    """No bootable image: MCUboot stops ("Unable to find bootable image")."""


# --- trailers ------------------------------------------------------------------------------------


def offsets(slot_size, align):
    """{field: offset in the slot} of the trailer (boot_magic_off() and the ones below it)."""
    magic = slot_size - MAGIC_SIZE
    image_ok = (magic - align) // align * align
    return {
        "magic": magic,
        "image_ok": image_ok,
        "copy_done": image_ok - align,
        "swap_info": image_ok - 2 * align,
        "swap_size": image_ok - 3 * align,
    }


def _flag(value):
    return {FLAG_SET: "set", ERASED: "unset"}.get(value, "bad")


def read_trailer(slot, align):
    """boot_read_swap_state() of a slot's bytes: {"magic", "swap_type", "image_num",
    "copy_done", "image_ok"}; magic good/unset/bad, flags set/unset/bad."""
    off = offsets(len(slot), align)
    raw = bytes(slot[off["magic"] : off["magic"] + MAGIC_SIZE])
    if raw == b"\xff" * MAGIC_SIZE:
        magic = "unset"
    elif raw == mcuboot_image.trailer_magic(align)[-MAGIC_SIZE:]:
        magic = "good"
    else:
        magic = "bad"
    info = slot[off["swap_info"]]
    swap_type = info & 0x0F
    if info == ERASED or swap_type > SWAP_REVERT or swap_type < SWAP_NONE:
        swap_type, image_num = SWAP_NONE, 0
    else:
        image_num = info >> 4
    return {
        "magic": magic,
        "swap_type": SWAP_NAMES[swap_type],
        "image_num": image_num,
        "copy_done": _flag(slot[off["copy_done"]]),
        "image_ok": _flag(slot[off["image_ok"]]),
    }


def swap_type(primary, secondary):
    """boot_swap_type_multi(): the swap a reset performs, from both trailers."""
    if secondary["magic"] == "good" and secondary["image_ok"] == "unset":
        return SWAP_TEST
    if secondary["magic"] == "good" and secondary["image_ok"] == "set":
        return SWAP_PERM
    if (
        primary["magic"] == "good"
        and primary["image_ok"] == "unset"
        and primary["copy_done"] == "set"
    ):
        return SWAP_REVERT
    return SWAP_NONE


def _field(align, value):
    return bytes([value]) + b"\xff" * (align - 1)


def _write_trailer(slot, align, kind, image_ok, swap_size):
    """The primary's trailer after a swap (swap_status_init(), then copy_done and image_ok)."""
    off = offsets(len(slot), align)
    size = len(slot)
    slot[off["swap_info"] : off["swap_info"] + align] = _field(align, kind)
    slot[off["swap_size"] : off["swap_size"] + 4] = swap_size.to_bytes(4, "little")
    magic = mcuboot_image.trailer_magic(align)
    slot[size - len(magic) :] = magic
    slot[off["copy_done"] : off["copy_done"] + align] = _field(align, FLAG_SET)
    if image_ok:
        slot[off["image_ok"] : off["image_ok"] + align] = _field(align, FLAG_SET)


# --- images --------------------------------------------------------------------------------------


def check_image(slot, key=None):
    """(Image, None) when the slot holds a bootable image, else (None or Image, reason);
    reason "no image" when its header is erased."""
    if bytes(slot[: mcuboot_image.HEADER_SIZE]) == b"\xff" * mcuboot_image.HEADER_SIZE:
        return None, "no image"
    try:
        image = mcuboot_image.parse(slot)
    except mcuboot_image.ImageError as exc:
        return None, "bad image: %s" % exc
    if image.tlv(mcuboot_image.TLV_SHA256) is None:
        return image, "bad image: no SHA-256 TLV"
    if not image.sha256_ok:
        return image, "hash mismatch: the SHA-256 TLV does not match the image"
    if key is not None:
        verdict = mcuimage.signature(bytes(slot[: image.end]), image, key)
        if verdict != "good":
            return image, "signature %s" % ("missing" if verdict == "unsigned" else "bad")
    return image, None


def describe(slot, key=None):
    """What `inspect` says of a slot's image: version, size, sha256, verdict."""
    image, error = check_image(slot, key)
    out = {"blank": error == "no image"}
    if image is None:
        out.update(version=None, valid=False)
    else:
        out.update(
            version=image.agent_version,
            valid=error is None,
            image_size=image.end,
            sha256=image.sha256.hex(),
            sha256_ok=image.sha256_ok,
            signed=image.signature_type is not None,
        )
    if error and error != "no image":
        out["error"] = error
    return out


# --- the boot ------------------------------------------------------------------------------------


class Layout:
    """The slots of a board profile: offsets, sizes, sectors, and what fits a swap."""

    def __init__(self, profile):
        self.page = profile["page"]
        self.align = profile["write_align"]
        self.mode = profile["swap"]
        self.primary = boards.partition(profile, PRIMARY)
        self.secondary = boards.partition(profile, SECONDARY)
        sectors = self.primary[1] // self.page
        # boot_trailer_sz(): swap status entries for every sector, then the trailer's fields
        status = 3 * sectors * WRITE_SIZE
        trailer = status + 4 * self.align + max(MAGIC_SIZE, self.align)
        self.trailer_sectors = -(-trailer // self.page)
        spare = 1 if self.mode == "move" else 0  # swap-move moves the primary up a sector
        self.max_image = (sectors - self.trailer_sectors - spare) * self.page


def boot(flash_path, profile, key=None):
    """One reset: swap (or revert) as MCUboot would, then validate the primary image.

    Returns {"events": [...], "version", "state": "confirmed" | "unconfirmed"} where each event
    is a dict without "boot" (the caller adds it). Raises Bricked when the primary image is not
    bootable. The flash file is rewritten at once when anything changed.
    """
    layout = Layout(profile)
    data = bytearray(Path(flash_path).read_bytes())
    p_off, size = layout.primary
    s_off, _ = layout.secondary
    pri = memoryview(data)[p_off : p_off + size]
    sec = memoryview(data)[s_off : s_off + size]
    st_p = read_trailer(pri, layout.align)
    st_s = read_trailer(sec, layout.align)
    kind = swap_type(st_p, st_s)
    events = []
    changed = False
    if kind != SWAP_NONE:
        changed, event = _swap(layout, pri, sec, st_s, kind, key)
        events.append(event)
    image, error = check_image(pri, key)
    if changed:
        _save(flash_path, data)
    if error is not None:
        raise Bricked("%s: %s" % (PRIMARY, error))
    # unconfirmed: the next reset reverts it unless image_ok is set first
    erased = {"magic": "unset", "image_ok": "unset"}
    unconfirmed = swap_type(read_trailer(pri, layout.align), erased) == SWAP_REVERT
    return {
        "events": events,
        "version": image.agent_version,
        "state": "unconfirmed" if unconfirmed else "confirmed",
    }


def _swap(layout, pri, sec, st_s, kind, key):
    """Validate the secondary, then swap; -> (flash changed, event)."""
    name = SWAP_NAMES[kind]
    old, _ = check_image(pri, key)
    new, error = check_image(sec, key)
    old_version = old.agent_version if old is not None else None
    new_version = new.agent_version if new is not None else None
    if error is not None:
        tail = len(sec) - layout.trailer_sectors * layout.page
        if error == "no image":  # only the trailer goes (swap_scramble_trailer_sectors)
            _erase(sec, tail, len(sec))
            if kind == SWAP_REVERT and layout.mode == "move":
                _erase(pri, tail, len(pri))  # a revert with nothing to revert to: "stuck"
        else:  # boot_scramble_slot(): the whole slot
            _erase(sec, 0, len(sec))
        reason = error if error == "no image" else "invalid image: " + error
        return True, {"event": "swap_failed", "type": name, "version": new_version,
                      "reason": reason}  # fmt: skip
    copy = max(new.end, old.end if old is not None else 0)
    if copy > layout.max_image:
        return False, {
            "event": "swap_failed",
            "type": name,
            "version": new_version,
            "reason": "image too large: %d bytes, swap-%s fits %d"
            % (copy, layout.mode, layout.max_image),
        }
    end = -(-copy // layout.page) * layout.page
    a = bytes(pri[:end])
    pri[:end] = sec[:end]
    sec[:end] = a
    tail = len(pri) - layout.trailer_sectors * layout.page
    _erase(pri, tail, len(pri))
    _erase(sec, tail, len(sec))
    # swap_status_init() copies a set image_ok of the secondary; a revert or a permanent swap
    # then sets it (swap_set_image_ok()); a test swap leaves it unset
    _write_trailer(pri, layout.align, kind, kind in (SWAP_PERM, SWAP_REVERT), copy)
    if kind == SWAP_REVERT:
        return True, {"event": "revert", "from": old_version, "to": new_version,
                      "reason": "unconfirmed"}  # fmt: skip
    return True, {"event": "swap", "type": name, "from": old_version, "to": new_version}


def _erase(view, start, end):
    view[start:end] = b"\xff" * (end - start)


def _save(path, data):
    tmp = Path(str(path) + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
