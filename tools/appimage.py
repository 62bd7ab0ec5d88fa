"""What an ESP32-family app image says about itself, checked the way esptool checks it.

describe(data) reads esp_image_header_t (magic 0xE9, chip id), the app descriptor
(esp_app_desc_t, magic 0xABCD5432, at the start of the first segment: version, project, build
time and date, IDF version, secure version), and verifies the image with esptool's own parser
(segments, XOR checksum, appended SHA-256). Used by tools/release.py and `vboard inspect`.
"""

import hashlib
import struct

IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
_DESC_OFFSET = 24 + 8  # image header + the first segment's header


class ImageError(ValueError):
    pass


def chip_names():
    """{esp_image_header_t.chip_id: chip name} from esptool's targets."""
    from esptool.targets import CHIP_DEFS

    names = {}
    for name, rom in CHIP_DEFS.items():
        chip_id = getattr(rom, "IMAGE_CHIP_ID", None)
        if chip_id is not None:
            names[chip_id] = name
    return names


def _text(raw):
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")


def app_descriptor(data):
    """The esp_app_desc_t fields of an image, or None when it has no descriptor."""
    if len(data) < _DESC_OFFSET + 256:
        return None
    desc = data[_DESC_OFFSET : _DESC_OFFSET + 256]
    magic, secure_version = struct.unpack_from("<II", desc, 0)
    if magic != APP_DESC_MAGIC:
        return None
    return {
        "version": _text(desc[16:48]),
        "project": _text(desc[48:80]),
        "time": _text(desc[80:96]),
        "date": _text(desc[96:112]),
        "idf_version": _text(desc[112:144]),
        "secure_version": secure_version,
        "elf_sha256": desc[144:176].hex(),
    }


def _esptool_verdict(data, chip):
    """None when esptool's parser accepts the image, else the reason it does not."""
    from esptool.bin_image import LoadFirmwareImage
    from esptool.util import FatalError

    try:
        image = LoadFirmwareImage(chip, bytes(data))
    except (FatalError, RuntimeError, struct.error) as exc:
        return str(exc)
    if image.checksum != image.calculate_checksum():
        return "checksum mismatch (stored 0x%02x, computed 0x%02x)" % (
            image.checksum,
            image.calculate_checksum(),
        )
    if image.append_digest and image.stored_digest != image.calc_digest:
        return "appended SHA-256 mismatch"
    return None


def image_length(data):
    """Bytes the image occupies: header, segments, padding, checksum, appended SHA-256."""
    if len(data) < 24:
        raise ImageError("shorter than an image header")
    nseg = data[1]
    hashed = data[23] == 1
    pos = 24
    for _ in range(nseg):
        if pos + 8 > len(data):
            raise ImageError("truncated segment header")
        size = struct.unpack_from("<I", data, pos + 4)[0]
        pos += 8 + size
        if pos > len(data):
            raise ImageError("truncated segment")
    pos += 16 - pos % 16  # padding up to the checksum byte, which ends a 16-byte line
    if hashed:
        pos += 32
    if pos > len(data):
        raise ImageError("truncated checksum or SHA-256")
    return pos


def describe(data, chip=None):
    """Metadata and validity of the image at the start of `data` (a file or a whole slot).

    Returns a dict: valid, error (None when valid), chip, chip_id, length, md5, sha256 (of the
    image's own bytes, not of trailing erased flash), and the app descriptor fields. Raises
    ImageError when `data` does not start with an ESP32-family image at all (wrong magic,
    unknown chip id).
    """
    if len(data) < 24 or data[0] != IMAGE_MAGIC:
        magic = "0x%02x" % data[0] if data else "empty"
        raise ImageError("not an ESP32 app image (magic %s, expected 0xe9)" % magic)
    chip_id = struct.unpack_from("<H", data, 12)[0]
    names = chip_names()
    if chip_id not in names:
        raise ImageError("not an ESP32-family app image (unknown chip id %d)" % chip_id)
    out = {"valid": False, "error": None, "chip": names[chip_id], "chip_id": chip_id}
    try:
        length = image_length(data)
    except ImageError as exc:
        out["error"] = str(exc)
        length = len(data)
    body = bytes(data[:length])
    out.update(length=length, md5=hashlib.md5(body).hexdigest())
    out["sha256"] = hashlib.sha256(body).hexdigest()
    desc = app_descriptor(data)
    out["hash_appended"] = data[23] == 1
    if desc is None:
        out["version"] = None
        out["error"] = out["error"] or "no app descriptor (magic 0xabcd5432) in the first segment"
    else:
        out.update(desc)
    if out["error"] is None:
        out["error"] = _esptool_verdict(data[:length], names[chip_id])
    if out["error"] is None and chip is not None and names[chip_id] != chip:
        out["error"] = "image is for %s (chip id %d), not %s" % (names[chip_id], chip_id, chip)
    out["valid"] = out["error"] is None
    return out
