"""Board profiles (boards/NAME/board.json): load and validate, for every host tool.

A profile is the board's flash layout in ESP-IDF's partitions.csv columns plus what the agent
needs to know about the board. The device reads the same JSON as /board.json.

    {
      "name": "esp32",                    # the folder name
      "description": "...",
      "chip": "esp32",                    # esp32, esp32s2, esp32s3, esp32c3, esp32c2, esp32c6
      "chip_id": 0,                       # esp_image_header_t.chip_id of that chip
      "slot": "esp32-ota",                # slot kind: A/B app partitions through esp32.Partition
      "flash_size": "0x400000",           # hex strings, as in partitions.csv
      "partitions": [["ota_0", "app", "ota_0", "0x10000", "0x180000"], ...],
      "chunk": 4096,                      # default download chunk (bytes, 256..65536)
      "heap": "64k"                       # the MicroPython heap the app is given
    }

An nRF-class board booted by MCUboot has its own shape: the devicetree's partition labels and
the facts MCUboot's trailer and swap depend on.

    {
      "name": "nrf52840", "description": "...",
      "chip": "nrf52840",                 # nrf52840, nrf9160
      "slot": "mcuboot",                  # primary/secondary slots swapped by MCUboot
      "flash_size": "0x100000",
      "page": 4096,                       # flash erase page
      "write_align": 8,                   # MCUboot's BOOT_MAX_ALIGN: each trailer field's size
      "swap": "move",                     # MCUboot's upgrade mode: move or scratch
      "partitions": [["mcuboot", "0x0", "0xc000"], ["image-0", ...], ["image-1", ...],
                     ["storage", ...]],   # [label, offset, size]; "image-scratch" for scratch
      "chunk": 4096, "heap": "96k"
    }

load(name_or_path) returns the validated dict or raises BoardError, whose message names the file
and the key at fault.
"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOARDS_DIR = ROOT / "boards"

SECTOR = 0x1000
APP_ALIGN = 0x10000  # ESP-IDF places app partitions on 64 KiB boundaries
FIRST_PARTITION = 0x9000  # after the bootloader and the partition table at 0x8000
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9, "esp32c2": 12, "esp32c6": 13}
SLOT_KINDS = ("esp32-ota",)
TYPES = ("app", "data")
DATA_SUBTYPES = ("ota", "phy", "nvs", "fat", "spiffs", "littlefs")  # what espidf.py packs
KEYS = (
    "name",
    "description",
    "chip",
    "chip_id",
    "slot",
    "flash_size",
    "partitions",
    "chunk",
    "heap",
)
VFS_LABEL = "vfs"
# nRF-class boards booted by MCUboot (slot kind "mcuboot")
MCUBOOT_CHIPS = ("nrf52840", "nrf9160")
MCUBOOT_KEYS = (
    "name",
    "description",
    "chip",
    "slot",
    "flash_size",
    "page",
    "write_align",
    "swap",
    "partitions",
    "chunk",
    "heap",
)
SWAP_MODES = ("move", "scratch")
MCUBOOT_LABELS = ("mcuboot", "image-0", "image-1", "storage")
SCRATCH_LABEL = "image-scratch"
STORAGE_LABEL = "storage"  # MicroPython's zephyr port mounts it at /flash
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_SIZE = re.compile(r"^([0-9]+)([kKmM]?)$")


class BoardError(ValueError):
    pass


def names():
    """The names of the board profiles in boards/."""
    return sorted(p.parent.name for p in BOARDS_DIR.glob("*/board.json"))


def parse_size(text):
    """'64k' -> 65536, '1m' -> 1048576, '4096' -> 4096; ValueError otherwise."""
    m = _SIZE.match(str(text).strip())
    if not m:
        raise ValueError("not a size: %r (examples: 65536, 64k, 1m)" % (text,))
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def load(name_or_path):
    """The validated profile of a board name (boards/NAME/board.json) or of a board.json path."""
    text = str(name_or_path)
    if text.endswith(".json") or "/" in text:
        path = Path(text)
    else:
        path = BOARDS_DIR / text / "board.json"
        if not path.is_file():
            raise BoardError("unknown board %r (known: %s)" % (text, ", ".join(names())))
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BoardError("%s: no such file" % path) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BoardError("%s: not valid JSON: %s" % (path, exc)) from None
    validate(profile, str(path))
    if path.name == "board.json" and path.parent.parent == BOARDS_DIR:
        if profile["name"] != path.parent.name:
            raise BoardError("%s: 'name' must be the folder name %r" % (path, path.parent.name))
    return profile


def _hex(where, key, value):
    if not isinstance(value, str) or not _HEX.match(value):
        raise BoardError('%s: %s must be a hex string like "0x10000", not %r' % (where, key, value))
    return int(value, 16)


def keys(profile):
    """The keys a profile of this slot kind has, in their order."""
    return MCUBOOT_KEYS if profile.get("slot") == "mcuboot" else KEYS


def fs_label(profile):
    """The label of the partition that holds the board's file system."""
    return STORAGE_LABEL if profile["slot"] == "mcuboot" else VFS_LABEL


def validate(profile, where="board.json"):
    """Check every key of a profile; raise BoardError naming the key at fault."""
    if not isinstance(profile, dict):
        raise BoardError("%s: a board profile is a JSON object" % where)
    if profile.get("slot") == "mcuboot":
        _validate_mcuboot(profile, where)
        return
    flash_size = _common(profile, where, KEYS, CHIP_IDS)
    chip = profile["chip"]
    if profile["chip_id"] != CHIP_IDS[chip] or isinstance(profile["chip_id"], bool):
        raise BoardError(
            "%s: 'chip_id' of %s is %d, not %r" % (where, chip, CHIP_IDS[chip], profile["chip_id"])
        )
    if profile["slot"] not in SLOT_KINDS:
        raise BoardError(
            "%s: 'slot': unknown slot kind %r (known: %s)"
            % (where, profile["slot"], ", ".join(SLOT_KINDS + ("mcuboot",)))
        )
    _validate_partitions(profile["partitions"], flash_size, where)


def _common(profile, where, known, chips):
    for key in profile:
        if key not in known:
            raise BoardError("%s: unknown key %r (known: %s)" % (where, key, ", ".join(known)))
    for key in known:
        if key not in profile:
            raise BoardError("%s: missing key %r" % (where, key))
    for key in ("name", "description", "chip", "slot", "heap"):
        if not isinstance(profile[key], str) or not profile[key]:
            raise BoardError("%s: %r must be a non-empty string" % (where, key))
    if profile["chip"] not in chips:
        raise BoardError(
            "%s: 'chip': unknown chip %r (known: %s)" % (where, profile["chip"], ", ".join(chips))
        )
    chunk = profile["chunk"]
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 256 <= chunk <= 65536:
        raise BoardError(
            "%s: 'chunk' must be an integer from 256 to 65536, not %r" % (where, chunk)
        )
    try:
        heap = parse_size(profile["heap"])
    except ValueError as exc:
        raise BoardError("%s: 'heap': %s" % (where, exc)) from None
    if heap < 16 * 1024:
        raise BoardError("%s: 'heap' of %r is too small (16k at least)" % (where, profile["heap"]))
    flash_size = _hex(where, "'flash_size'", profile["flash_size"])
    if flash_size < 0x100000 or flash_size & (flash_size - 1):
        raise BoardError("%s: 'flash_size' must be a power of two of 1 MiB or more" % where)
    return flash_size


def _validate_mcuboot(profile, where):
    flash_size = _common(profile, where, MCUBOOT_KEYS, MCUBOOT_CHIPS)
    if profile["page"] != SECTOR or isinstance(profile["page"], bool):
        raise BoardError(
            "%s: 'page' must be 4096 (the nRF flash page), not %r" % (where, profile["page"])
        )
    if profile["write_align"] not in (8, 16, 32) or isinstance(profile["write_align"], bool):
        raise BoardError(
            "%s: 'write_align' (BOOT_MAX_ALIGN) must be 8, 16 or 32, not %r"
            % (where, profile["write_align"])
        )
    if profile["swap"] not in SWAP_MODES:
        raise BoardError(
            "%s: 'swap' must be one of %s, not %r" % (where, ", ".join(SWAP_MODES), profile["swap"])
        )
    rows = profile["partitions"]
    if not isinstance(rows, list) or not rows:
        raise BoardError("%s: 'partitions' must be a list of rows" % where)
    spans = {}
    for i, row in enumerate(rows):
        key = "'partitions'[%d]" % i
        if not isinstance(row, list) or len(row) != 3 or not all(isinstance(c, str) for c in row):
            raise BoardError("%s: %s must be [label, offset, size] strings" % (where, key))
        label = row[0]
        key = "'partitions'[%d] (%s)" % (i, label)
        if label not in MCUBOOT_LABELS + (SCRATCH_LABEL,) or label in spans:
            raise BoardError(
                "%s: %s: labels are %s (each once)"
                % (where, key, ", ".join(MCUBOOT_LABELS + (SCRATCH_LABEL,)))
            )
        offset = _hex(where, key + " offset", row[1])
        length = _hex(where, key + " size", row[2])
        if offset % SECTOR or length % SECTOR or length == 0:
            raise BoardError("%s: %s: offset and size must be multiples of 0x1000" % (where, key))
        if offset + length > flash_size:
            raise BoardError(
                "%s: %s: 0x%x..0x%x is past flash_size" % (where, key, offset, offset + length)
            )
        for other, (start, end) in spans.items():
            if offset < end and start < offset + length:
                raise BoardError("%s: %s overlaps %s" % (where, key, other))
        spans[label] = (offset, offset + length)
    for label in MCUBOOT_LABELS:
        if label not in spans:
            raise BoardError("%s: 'partitions' needs a %r partition" % (where, label))
    if spans["mcuboot"][0] != 0:
        raise BoardError("%s: 'partitions' (mcuboot): MCUboot starts the flash, at 0x0" % where)
    sizes = [end - start for start, end in (spans["image-0"], spans["image-1"])]
    if sizes[0] != sizes[1]:
        raise BoardError("%s: 'partitions': image-0 and image-1 must be the same size" % where)
    if (profile["swap"] == "scratch") != (SCRATCH_LABEL in spans):
        raise BoardError(
            "%s: 'partitions': an %r partition goes with swap scratch, and only with it"
            % (where, SCRATCH_LABEL)
        )


def _validate_partitions(rows, flash_size, where):
    if not isinstance(rows, list) or not rows:
        raise BoardError("%s: 'partitions' must be a list of rows" % where)
    labels = set()
    spans = []
    ota_slots = 0
    for i, row in enumerate(rows):
        key = "'partitions'[%d]" % i
        if not isinstance(row, list) or len(row) != 5 or not all(isinstance(c, str) for c in row):
            raise BoardError(
                "%s: %s must be [label, type, subtype, offset, size] strings" % (where, key)
            )
        label, ptype, subtype, off, size = row
        key = "'partitions'[%d] (%s)" % (i, label)
        if not label or len(label) > 15 or label in labels:
            raise BoardError("%s: %s: labels are unique, 1 to 15 characters" % (where, key))
        labels.add(label)
        if ptype not in TYPES:
            raise BoardError("%s: %s: type must be app or data, not %r" % (where, key, ptype))
        if ptype == "app":
            ok = subtype == "factory" or re.match(r"^ota_(1[0-5]|[0-9])$", subtype)
            ota_slots += subtype.startswith("ota_")
        else:
            ok = subtype in DATA_SUBTYPES
        if not ok:
            raise BoardError("%s: %s: unknown %s subtype %r" % (where, key, ptype, subtype))
        offset = _hex(where, key + " offset", off)
        length = _hex(where, key + " size", size)
        align = APP_ALIGN if ptype == "app" else SECTOR
        if offset % align or length % SECTOR or length == 0:
            raise BoardError(
                "%s: %s: offset must be a multiple of 0x%x and size of 0x1000" % (where, key, align)
            )
        if offset < FIRST_PARTITION or offset + length > flash_size:
            raise BoardError(
                "%s: %s: 0x%x..0x%x is outside 0x%x..flash_size"
                % (where, key, offset, offset + length, FIRST_PARTITION)
            )
        for other, start, end in spans:
            if offset < end and start < offset + length:
                raise BoardError("%s: %s overlaps %s" % (where, key, other))
        spans.append((label, offset, offset + length))
    if ota_slots < 2:
        raise BoardError("%s: 'partitions' needs two OTA app slots (ota_0, ota_1)" % where)
    if not any(r[1] == "data" and r[2] == "ota" for r in rows):
        raise BoardError("%s: 'partitions' needs an otadata partition (data, ota)" % where)
    for r in rows:
        if r[1] == "data" and r[2] == "ota" and int(r[4], 16) != 2 * SECTOR:
            raise BoardError("%s: 'partitions' (%s): otadata is 0x2000 bytes" % (where, r[0]))
    if VFS_LABEL not in labels:
        raise BoardError(
            "%s: 'partitions' needs a %r data partition (the file system)" % (where, VFS_LABEL)
        )


def partition(profile, label):
    """(offset, size) of the partition `label`; KeyError when there is none."""
    for row in profile["partitions"]:
        if row[0] == label:
            return int(row[-2], 16), int(row[-1], 16)
    raise KeyError(label)


def heap_bytes(profile):
    return parse_size(profile["heap"])


def dumps(profile):
    """The profile as the board's /board.json: one partition row per line, like the sources."""
    items = []
    for key in keys(profile):
        if key == "partitions":
            rows = ",\n".join("    " + json.dumps(r) for r in profile[key])
            items.append('  "partitions": [\n%s\n  ]' % rows)
        else:
            items.append("  %s: %s" % (json.dumps(key), json.dumps(profile[key])))
    return "{\n" + ",\n".join(items) + "\n}\n"
