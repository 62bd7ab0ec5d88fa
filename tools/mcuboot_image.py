"""A reader of MCUboot images and slot trailers, in plain Python (struct and hashlib only).

    image = mcuboot_image.check(data)     # parse, then require a matching SHA-256 TLV
    image.version_text                    # "2.1.3+7", from ih_ver
    mcuboot_image.trailer(slot_bytes)     # the trailer at the end of a slot, or None

The format, as MCUboot's bootutil reads it (boot/bootutil/include/bootutil/image.h and
docs/design.md in mcu-tools/mcuboot); everything is little-endian:

- a 32-byte header at offset 0: ih_magic 0x96f3b83d, ih_load_addr, ih_hdr_size (u16: the header
  area, usually padded to 0x200), ih_protect_tlv_size (u16: the whole protected TLV area, its
  info header included, 0 when there is none), ih_img_size (u32: the payload, header excluded),
  ih_flags, ih_ver (u8 major, u8 minor, u16 revision, u32 build number), 4 bytes of padding;
- the payload at ih_hdr_size, ih_img_size bytes long;
- at ih_hdr_size + ih_img_size, the protected TLV area when ih_protect_tlv_size is not 0: an info
  header (u16 magic 0x6908, u16 total size of the area, this header included), then TLVs;
- then the unprotected TLV area: info header (magic 0x6907, total size), then TLVs;
- each TLV: u16 type, u16 length, the value. Type 0x10 is the SHA-256 of everything from offset 0
  to the end of the protected TLV area (header, payload, protected TLVs); 0x01 the hash of the
  signing key, 0x22 an ECDSA signature, 0x24 an ed25519 one.

The trailer at the end of a slot (swap modes, without encryption): the 16-byte magic in the last
BOOT_MAX_ALIGN-rounded 16 bytes, before it image_ok, copy_done and swap_info, one byte each in a
BOOT_MAX_ALIGN-sized field, oldest-first upwards. An erased byte reads 0xff; "set" is 0x01.

Errors are ImageError (a ValueError) with a one-line message naming the offset or the field.
"""

import hashlib
import struct

IMAGE_MAGIC = 0x96F3B83D
HEADER_SIZE = 32
TLV_INFO_MAGIC = 0x6907
TLV_PROT_INFO_MAGIC = 0x6908
TLV_KEYHASH = 0x01
TLV_SHA256 = 0x10
TLV_ECDSA_SIG = 0x22
TLV_ED25519 = 0x24
TLV_NAMES = {
    0x01: "keyhash", 0x02: "pubkey", 0x10: "sha256", 0x11: "sha384", 0x12: "sha512",
    0x20: "rsa2048", 0x22: "ecdsa", 0x23: "rsa3072", 0x24: "ed25519", 0x25: "sig_pure",
    0x40: "dependency", 0x50: "security_counter", 0x60: "boot_record",
}  # fmt: skip
# The trailer's magic when BOOT_MAX_ALIGN is 8; other alignments write theirs differently.
TRAILER_MAGIC = bytes.fromhex("77c295f360d2ef7f3552500f2cb67980")
_TRAILER_MAGIC_TAIL = bytes.fromhex("2de15d29410b8d77679c110f1f8a")  # after a u16 of max_align
FLAG_SET = 0x01
ERASED = 0xFF

_HEADER = struct.Struct("<IIHHIIBBHII")
_TLV = struct.Struct("<HH")


class ImageError(ValueError):
    pass


class Image:
    """A parsed image: header fields, TLVs [(type, value, protected)], and hash facts."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    @property
    def version_text(self):
        major, minor, revision, build = self.version
        return "%d.%d.%d+%d" % (major, minor, revision, build)

    @property
    def agent_version(self):
        """The version as the agent reads ih_ver (fota.slots.mcubootcheck) and reports it:
        major.minor.revision, +build only when it is not 0."""
        major, minor, revision, build = self.version
        return "%d.%d.%d" % (major, minor, revision) + ("+%d" % build if build else "")

    def tlv(self, kind):
        """The value of the first TLV of type `kind`, or None."""
        for tlv_type, value, _ in self.tlvs:
            if tlv_type == kind:
                return value
        return None

    def summary(self):
        """A JSON-ready dict of what the image says."""
        return {
            "version": self.version_text,
            "header_size": self.header_size,
            "image_size": self.image_size,
            "protected_tlv_size": self.protected_tlv_size,
            "flags": self.flags,
            "load_addr": self.load_addr,
            "total_size": self.end,
            "tlvs": [
                {"type": TLV_NAMES.get(t, "0x%02x" % t), "len": len(v), "protected": p}
                for t, v, p in self.tlvs
            ],
            "sha256": self.sha256.hex(),
            "sha256_ok": self.sha256_ok,
            "signed": self.signature_type is not None,
        }


def _tlv_area(data, off, magic, name):
    """[(type, value)] of the TLV area at off with info magic `magic`, and its total size."""
    if off + 4 > len(data):
        raise ImageError(
            "%s TLV info at offset %d is past the end (%d bytes)" % (name, off, len(data))
        )
    found, total = _TLV.unpack_from(data, off)
    if found != magic:
        raise ImageError(
            "%s TLV info magic at offset %d is 0x%04x, not 0x%04x" % (name, off, found, magic)
        )
    if total < 4 or off + total > len(data):
        raise ImageError(
            "%s TLV area at offset %d claims %d bytes, past the end" % (name, off, total)
        )
    tlvs = []
    pos = off + 4
    while pos < off + total:
        if pos + 4 > off + total:
            raise ImageError("%s TLV header at offset %d is cut off" % (name, pos))
        kind, length = _TLV.unpack_from(data, pos)
        if pos + 4 + length > off + total:
            raise ImageError("%s TLV 0x%02x at offset %d overruns its area" % (name, kind, pos))
        tlvs.append((kind, bytes(data[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    return tlvs, total


def parse(data):
    """The Image in data (bytes-like: an image file, or a slot that starts with one).

    Raises ImageError when the header or a TLV area is malformed. The hash is computed and
    compared (sha256_ok) but a mismatch is not an error here: see check()."""
    data = memoryview(data)
    if len(data) < HEADER_SIZE:
        raise ImageError("%d bytes: shorter than an image header" % len(data))
    (magic, load_addr, hdr_size, prot_size, img_size, flags,
     major, minor, revision, build, _) = _HEADER.unpack_from(data, 0)  # fmt: skip
    if magic != IMAGE_MAGIC:
        raise ImageError("header magic is 0x%08x, not 0x%08x" % (magic, IMAGE_MAGIC))
    if hdr_size < HEADER_SIZE:
        raise ImageError("ih_hdr_size %d is smaller than the 32-byte header" % hdr_size)
    body_end = hdr_size + img_size
    if body_end > len(data):
        raise ImageError(
            "ih_hdr_size + ih_img_size = %d is past the end (%d bytes)" % (body_end, len(data))
        )
    tlvs = []
    off = body_end
    if prot_size:
        prot, total = _tlv_area(data, off, TLV_PROT_INFO_MAGIC, "protected")
        if total != prot_size:
            raise ImageError(
                "protected TLV area is %d bytes, ih_protect_tlv_size says %d" % (total, prot_size)
            )
        tlvs += [(t, v, True) for t, v in prot]
        off += total
    hashed_end = off
    unprot, total = _tlv_area(data, off, TLV_INFO_MAGIC, "unprotected")
    tlvs += [(t, v, False) for t, v in unprot]
    computed = hashlib.sha256(data[:hashed_end]).digest()
    image = Image(
        header_size=hdr_size,
        image_size=img_size,
        protected_tlv_size=prot_size,
        load_addr=load_addr,
        flags=flags,
        version=(major, minor, revision, build),
        tlvs=tlvs,
        hashed_end=hashed_end,
        end=off + total,
        sha256=computed,
    )
    stated = image.tlv(TLV_SHA256)
    image.sha256_ok = stated is not None and stated == computed
    image.signature_type = next(
        (TLV_NAMES[t] for t, _, _ in tlvs if t in (0x20, TLV_ECDSA_SIG, 0x23, TLV_ED25519)), None
    )
    return image


def check(data):
    """parse(data), then require a SHA-256 TLV that matches the bytes; ImageError otherwise."""
    image = parse(data)
    stated = image.tlv(TLV_SHA256)
    if stated is None:
        raise ImageError("no SHA-256 TLV (type 0x10) in the image")
    if stated != image.sha256:
        raise ImageError(
            "SHA-256 mismatch: the TLV says %s, bytes 0..%d hash to %s"
            % (stated.hex(), image.hashed_end, image.sha256.hex())
        )
    return image


def trailer_magic(max_align=8):
    """The 16 (or max_align) bytes MCUboot writes at the very end of a slot."""
    if max_align == 8:
        return TRAILER_MAGIC
    size = max(16, max_align)
    return b"\xff" * (size - 16) + struct.pack("<H", max_align) + _TRAILER_MAGIC_TAIL


def trailer(slot, max_align=8):
    """The trailer at the end of `slot` (the whole slot's bytes): None when its magic is not
    there, else {"magic": "good", "image_ok", "copy_done", "swap_info"} with each flag as
    "set" (0x01), "unset" (0xff, erased) or its hex value."""
    if max_align not in (8, 16, 32):
        raise ImageError("max_align must be 8, 16 or 32, not %r" % (max_align,))
    magic = trailer_magic(max_align)
    if len(slot) < len(magic) + 3 * max_align or bytes(slot[-len(magic) :]) != magic:
        return None
    image_ok = len(slot) - len(magic) - max_align

    def flag(off):
        value = slot[off]
        return {FLAG_SET: "set", ERASED: "unset"}.get(value, "0x%02x" % value)

    return {
        "magic": "good",
        "image_ok": flag(image_ok),
        "copy_done": flag(image_ok - max_align),
        "swap_info": flag(image_ok - 2 * max_align),
    }
