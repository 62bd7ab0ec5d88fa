"""What an ESP32-family app image says about itself, checked the way esptool checks it; and
test images of a given version and size.

    python tools/appimage.py --version 2.0.0 --size 1500000 [--chip esp32] [--project NAME]
                             -o app-2.0.0.bin

writes a valid app image (header, two segments, checksum, appended SHA-256; its app descriptor
names VERSION) of exactly SIZE bytes (a multiple of 16, as every ESP32 image is; 64k and 1m
work too), checks it as tools/release.py does and prints the same JSON: size, md5, sha256,
version ..., what a cloud's console asks for. Its code does nothing: on a real board it passes
the bootloader's and the agent's checks, then fails to run, so the bootloader rolls back; use
your own firmware to see an update succeed. Errors: `appimage: message`, exit status 1.

describe(data) reads esp_image_header_t (magic 0xE9, chip id), the app descriptor
(esp_app_desc_t, magic 0xABCD5432, at the start of the first segment: version, project, build
time and date, IDF version, secure version), and verifies the image with esptool's own parser
(segments, XOR checksum, appended SHA-256). Used by tools/release.py and `vboard inspect`.
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

import cli

TOOLS = Path(__file__).resolve().parent

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


class AppImageError(cli.ToolError):
    pass


def make(version, size, chip="esp32", project="fota-test"):
    """The bytes of a valid app image of `version`, exactly `size` bytes (a multiple of 16)."""
    if str(TOOLS / "devices") not in sys.path:
        sys.path.append(str(TOOLS / "devices"))
    import espidf

    if chip not in espidf.CHIP_IDS:
        raise AppImageError("unknown chip %r (known: %s)" % (chip, ", ".join(espidf.CHIP_IDS)))
    if not 0 < len(version.encode()) <= 31:
        raise AppImageError("the version must be 1 to 31 bytes (esp_app_desc_t.version)")
    if len(project.encode()) > 31:
        raise AppImageError("the project name must be at most 31 bytes")
    if size % 16 or size < _MIN_SIZE:
        raise AppImageError(
            "--size must be a multiple of 16 and at least %d bytes, not %d" % (_MIN_SIZE, size)
        )
    data = espidf.make_app_image(version, chip, size=size, project=project)
    if len(data) != size:  # the layout above makes it exact; never hand out another size
        raise AppImageError("made %d bytes instead of %d" % (len(data), size))
    return data


# header 24, two segment headers 16, the descriptor's segment 512, 4 bytes of code, checksum
# and padding up to 16, the appended SHA-256 32
_MIN_SIZE = 608


def main(argv=None):
    import release

    import boards

    parser = cli.Parser(
        prog="appimage",
        description="Make a valid ESP32-family app image of a given version and size, for "
        "testing updates, and print its size, digests and version as JSON.",
    )
    parser.add_argument("--version", required=True, help="the app descriptor's version")
    parser.add_argument(
        "--size", required=True, help="bytes, a multiple of 16 (e.g. 1500000, 64k, 1m)"
    )
    parser.add_argument("--chip", default="esp32", help="esp32 (default), esp32c3, esp32s3 ...")
    parser.add_argument("--project", default="fota-test", help="the app descriptor's project")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="image to write")
    args = parser.parse_args(argv)
    try:
        size = boards.parse_size(args.size)
    except ValueError as exc:
        raise AppImageError("--size: %s" % exc) from None
    data = make(args.version, size, args.chip, args.project)
    out = Path(args.output)
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise AppImageError("cannot write %s: %s" % (out, exc.strerror or exc)) from None
    try:
        meta = release.metadata(out, args.chip, args.version)
    except release.ReleaseError as exc:
        out.unlink()
        raise AppImageError(str(exc)) from None
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("appimage", main))
