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


def validate(profile, where="board.json"):
    """Check every key of a profile; raise BoardError naming the key at fault."""
    if not isinstance(profile, dict):
        raise BoardError("%s: a board profile is a JSON object" % where)
    for key in profile:
        if key not in KEYS:
            raise BoardError("%s: unknown key %r (known: %s)" % (where, key, ", ".join(KEYS)))
    for key in KEYS:
        if key not in profile:
            raise BoardError("%s: missing key %r" % (where, key))
    for key in ("name", "description", "chip", "slot", "heap"):
        if not isinstance(profile[key], str) or not profile[key]:
            raise BoardError("%s: %r must be a non-empty string" % (where, key))
    chip = profile["chip"]
    if chip not in CHIP_IDS:
        raise BoardError(
            "%s: 'chip': unknown chip %r (known: %s)" % (where, chip, ", ".join(CHIP_IDS))
        )
    if profile["chip_id"] != CHIP_IDS[chip] or isinstance(profile["chip_id"], bool):
        raise BoardError(
            "%s: 'chip_id' of %s is %d, not %r" % (where, chip, CHIP_IDS[chip], profile["chip_id"])
        )
    if profile["slot"] not in SLOT_KINDS:
        raise BoardError(
            "%s: 'slot': unknown slot kind %r (known: %s)"
            % (where, profile["slot"], ", ".join(SLOT_KINDS))
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
    _validate_partitions(profile["partitions"], flash_size, where)


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
            return int(row[3], 16), int(row[4], 16)
    raise KeyError(label)


def heap_bytes(profile):
    return parse_size(profile["heap"])


def dumps(profile):
    """The profile as the board's /board.json: one partition row per line, like the sources."""
    items = []
    for key in KEYS:
        if key == "partitions":
            rows = ",\n".join("    " + json.dumps(r) for r in profile[key])
            items.append('  "partitions": [\n%s\n  ]' % rows)
        else:
            items.append("  %s: %s" % (json.dumps(key), json.dumps(profile[key])))
    return "{\n" + ",\n".join(items) + "\n}\n"
