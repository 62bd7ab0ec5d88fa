"""Board profiles (boards/*/board.json) and their loader (tools/boards.py)."""

import copy
import json
import sys
from pathlib import Path

import espidf
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import boards  # noqa: E402

# MicroPython's ports/esp32/partitions-4MiB-ota.csv, row for row.
MICROPYTHON_4MIB_OTA = [
    ["nvs", "data", "nvs", "0x9000", "0x4000"],
    ["otadata", "data", "ota", "0xd000", "0x2000"],
    ["phy_init", "data", "phy", "0xf000", "0x1000"],
    ["ota_0", "app", "ota_0", "0x10000", "0x180000"],
    ["ota_1", "app", "ota_1", "0x190000", "0x180000"],
    ["vfs", "data", "fat", "0x310000", "0xf0000"],
]


def test_every_profile_loads_and_packs_into_an_esp_idf_partition_table():
    assert boards.names() == ["esp32", "esp32c3", "esp32s3"]
    for name in boards.names():
        profile = boards.load(name)
        assert profile["name"] == name
        assert profile["chip_id"] == espidf.CHIP_IDS[profile["chip"]]
        entries = espidf.profile_entries(profile)
        table = espidf.pack_partition_table(entries)
        assert espidf.parse_partition_table(table) == entries
        slots = espidf.ota_slots(entries)
        assert [s[0] for s in slots] == ["ota_0", "ota_1"] and slots[0][4] == slots[1][4]
        offset, size = boards.partition(profile, "vfs")
        assert offset + size <= int(profile["flash_size"], 16)
        assert boards.heap_bytes(profile) >= 32 * 1024
        assert json.loads(boards.dumps(profile)) == profile


def test_profiles_follow_micropythons_ota_layouts():
    assert boards.load("esp32")["partitions"] == MICROPYTHON_4MIB_OTA
    assert boards.load("esp32c3")["partitions"] == MICROPYTHON_4MIB_OTA
    assert (boards.load("esp32c3")["chip"], boards.load("esp32s3")["chip"]) == (
        "esp32c3",
        "esp32s3",
    )
    # partitions-8MiBplus-ota.csv: two 0x270000 slots; the rest of the 8 MiB is the file system.
    s3 = boards.load("esp32s3")["partitions"]
    assert s3[3:5] == [
        ["ota_0", "app", "ota_0", "0x10000", "0x270000"],
        ["ota_1", "app", "ota_1", "0x280000", "0x270000"],
    ]
    # what the agent and the application share on a board: MicroPython starts with 64 KB on the
    # C3 and S3 without PSRAM (56 KB on the ESP32) and grows it from the IDF heap
    assert {boards.heap_bytes(boards.load(n)) for n in boards.names()} == {64 * 1024}


def test_sizes_parse_like_micropythons_heapsize():
    assert boards.parse_size("64k") == 65536
    assert boards.parse_size("2M") == 2 * 1024 * 1024
    assert boards.parse_size("4096") == 4096
    with pytest.raises(ValueError):
        boards.parse_size("64q")


def _mutate(change):
    profile = copy.deepcopy(boards.load("esp32"))
    change(profile)
    return profile


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(colour="blue"), "unknown key 'colour'"),
        (lambda p: p.pop("heap"), "missing key 'heap'"),
        (lambda p: p.update(chip="esp33"), "'chip': unknown chip 'esp33'"),
        (lambda p: p.update(chip_id=9), "'chip_id'"),
        (lambda p: p.update(slot="mcuboot"), "'slot'"),
        (lambda p: p.update(chunk=100), "'chunk'"),
        (lambda p: p.update(heap="lots"), "'heap'"),
        (lambda p: p.update(flash_size="4MB"), "'flash_size' must be a hex string"),
        (lambda p: p["partitions"][3].__setitem__(3, "0x11000"), "(ota_0): offset"),
        (lambda p: p["partitions"][4].__setitem__(3, "0x100000"), "(ota_1) overlaps ota_0"),
        (lambda p: p["partitions"][5].__setitem__(4, "0x200000"), "(vfs): 0x310000..0x510000"),
        (lambda p: p["partitions"][5].__setitem__(2, "ext4"), "unknown data subtype 'ext4'"),
        (lambda p: p["partitions"].pop(5), "needs a 'vfs' data partition"),
        (lambda p: p["partitions"].pop(4), "needs two OTA app slots"),
        (lambda p: p["partitions"][0].pop(), "'partitions'[0] must be"),
    ],
)
def test_a_bad_profile_is_refused_with_the_key_named(change, message):
    with pytest.raises(boards.BoardError) as err:
        boards.validate(_mutate(change), "boards/x/board.json")
    assert message in str(err.value)
    assert str(err.value).startswith("boards/x/board.json: ")


def test_unknown_board_names_the_known_ones(tmp_path):
    with pytest.raises(boards.BoardError, match="unknown board 'esp99' .*esp32s3"):
        boards.load("esp99")
    bad = tmp_path / "board.json"
    bad.write_text("{nope")
    with pytest.raises(boards.BoardError, match="not valid JSON"):
        boards.load(bad)
