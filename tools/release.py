"""Print the cloud-side metadata of a firmware image, as JSON, for publishing an update.

    python tools/release.py IMAGE.bin [--chip esp32] [--version 2.0.0]

An ESP32 app image: {"file", "size", "md5", "sha256", "version", "project", "idf_version",
"chip", "chip_id", "date", "time", "secure_version", "hash_appended"}: size and digests of the
whole file (what the device downloads and checks), the rest from the image header and its app
descriptor. An MCUboot image (an nRF board's signed app, e.g. zephyr.signed.bin): {"file",
"size", "md5", "sha256", "version", "format": "mcuboot", "header_size", "image_size",
"signed"}, the version from ih_ver as the agent reads it (major.minor.revision, +build when not
0). Refuses (exit 1, `release: message` on stderr) a file that is not a valid image of either
kind (an ESP32 image's magic, segments, checksum, appended SHA-256, app descriptor; an MCUboot
image's header, TLV areas and SHA-256 TLV), an image for another chip than --chip, or one whose
version is not --version.
"""

import hashlib
import json
import sys
from pathlib import Path

import appimage
import cli
import mcuboot_image


class ReleaseError(cli.ToolError):
    pass


def metadata(path, chip=None, version=None):
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReleaseError("%s: %s" % (path, exc.strerror or exc)) from None
    if data[:4] == mcuboot_image.IMAGE_MAGIC.to_bytes(4, "little"):
        return _mcuboot(path, data, chip, version)
    try:
        info = appimage.describe(data)
    except appimage.ImageError as exc:
        raise ReleaseError("%s: %s" % (path, exc)) from None
    if chip is not None and info["chip"] != chip:
        raise ReleaseError(
            "%s: is an %s image (chip id %d), not %s" % (path, info["chip"], info["chip_id"], chip)
        )
    if not info["valid"]:
        raise ReleaseError("%s: invalid %s image: %s" % (path, info["chip"], info["error"]))
    if version is not None and info["version"] != version:
        raise ReleaseError(
            "%s: the app descriptor says %s, not %s" % (path, info["version"], version)
        )
    return {
        **_file(path, data, info["length"]),
        "version": info["version"],
        "project": info["project"],
        "idf_version": info["idf_version"],
        "chip": info["chip"],
        "chip_id": info["chip_id"],
        "date": info["date"],
        "time": info["time"],
        "secure_version": info["secure_version"],
        "hash_appended": info["hash_appended"],
    }


def _file(path, data, end):
    """What the cloud needs of the whole file (the device downloads and hashes all of it);
    a note on stderr when bytes follow the image's `end` (they would go along: a padded slot
    image's trailer, say)."""
    if end != len(data):
        trailing = len(data) - end
        print("release: note: %d bytes follow the image in %s" % (trailing, path), file=sys.stderr)
    return {
        "file": Path(path).name,
        "size": len(data),
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _mcuboot(path, data, chip, version):
    try:
        image = mcuboot_image.check(data)
    except mcuboot_image.ImageError as exc:
        raise ReleaseError("%s: invalid MCUboot image: %s" % (path, exc)) from None
    if chip is not None:
        raise ReleaseError("%s: is an MCUboot image, which names no chip (--chip)" % path)
    text = image.agent_version
    if version is not None and text != version:
        raise ReleaseError("%s: the MCUboot header says %s, not %s" % (path, text, version))
    return {
        **_file(path, data, image.end),
        "version": text,
        "format": "mcuboot",
        "header_size": image.header_size,
        "image_size": image.image_size,
        "signed": image.signature_type is not None,
    }


def main(argv=None):
    parser = cli.Parser(
        prog="release.py", description="Cloud-side metadata of an ESP32 or MCUboot image."
    )
    parser.add_argument("image", metavar="IMAGE.bin")
    parser.add_argument("--chip", help="refuse an image for another chip (esp32, esp32s3 ...)")
    parser.add_argument("--version", help="refuse an image whose header says otherwise")
    args = parser.parse_args(argv)
    meta = metadata(args.image, args.chip, args.version)
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("release", main))
