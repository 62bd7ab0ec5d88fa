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


ESP32_BOARDS = ["esp32", "esp32c3", "esp32s3"]
NRF_BOARDS = ["nrf52840", "nrf9160"]


def test_every_profile_loads_and_packs_into_an_esp_idf_partition_table():
    assert boards.names() == ESP32_BOARDS + NRF_BOARDS
    for name in ESP32_BOARDS:
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
    assert {boards.heap_bytes(boards.load(n)) for n in ESP32_BOARDS} == {64 * 1024}


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
        (lambda p: p.update(slot="zephyr-ota"), "'slot': unknown slot kind 'zephyr-ota'"),
        (lambda p: p.update(slot="mcuboot"), "unknown key 'chip_id'"),
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


# --- nRF-class boards booted by MCUboot -------------------------------------------------------


def test_nrf_profiles_have_the_mcuboot_shape_and_a_storage_big_enough_for_the_agent():
    for name in NRF_BOARDS:
        profile = boards.load(name)
        assert list(profile) == list(boards.MCUBOOT_KEYS)
        assert (profile["slot"], profile["page"], profile["write_align"]) == ("mcuboot", 4096, 8)
        assert profile["swap"] == "move"
        assert [r[0] for r in profile["partitions"]] == ["mcuboot", "image-0", "image-1", "storage"]
        primary, secondary = (boards.partition(profile, s) for s in ("image-0", "image-1"))
        assert primary[1] == secondary[1] and primary[0] + primary[1] == secondary[0]
        # the agent's .mpy files take a 4 KiB LittleFS block each: 256 KiB at the least
        assert boards.partition(profile, boards.fs_label(profile))[1] >= 0x50000
        assert boards.fs_label(profile) == "storage"
        assert json.loads(boards.dumps(profile)) == profile
        assert list(json.loads(boards.dumps(profile))) == list(boards.MCUBOOT_KEYS)


def test_nrf_profiles_follow_zephyrs_mcuboot_partition_and_micropythons_heap():
    nrf52 = boards.load("nrf52840")
    nrf91 = boards.load("nrf9160")
    # Zephyr's nrf52840_partition.dtsi: mcuboot 0x0..0xc000; nrf91xx_partition.dtsi: 0x0..0x10000
    assert nrf52["partitions"][0] == ["mcuboot", "0x0", "0xc000"]
    assert nrf91["partitions"][0] == ["mcuboot", "0x0", "0x10000"]
    # the nRF91's TF-M areas (0xf0000..0xf8000) stay free
    assert all(
        int(off, 16) + int(size, 16) <= 0xF0000 or int(off, 16) >= 0xF8000
        for _, off, size in nrf91["partitions"]
    )
    # CONFIG_MICROPY_HEAP_SIZE=98304 as the nRF52840 DK's build sets it (the port's default,
    # 49152, is too small for the agent's full cycle)
    assert (boards.heap_bytes(nrf52), boards.heap_bytes(nrf91)) == (98304, 98304)
    assert (nrf52["flash_size"], nrf91["flash_size"]) == ("0x100000", "0x100000")


def _nrf(change):
    profile = copy.deepcopy(boards.load("nrf52840"))
    change(profile)
    return profile


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(chip_id=0), "unknown key 'chip_id'"),
        (lambda p: p.pop("swap"), "missing key 'swap'"),
        (lambda p: p.update(chip="nrf5340"), "'chip': unknown chip 'nrf5340'"),
        (lambda p: p.update(page=2048), "'page' must be 4096"),
        (lambda p: p.update(write_align=4), "'write_align' (BOOT_MAX_ALIGN)"),
        (lambda p: p.update(swap="offset"), "'swap' must be one of move, scratch"),
        (lambda p: p.update(swap="scratch"), "'image-scratch' partition goes with swap scratch"),
        (lambda p: p["partitions"][1].__setitem__(2, "0x53000"), "(image-1) overlaps image-0"),
        (lambda p: p["partitions"][2].__setitem__(2, "0x51000"), "the same size"),
        (lambda p: p["partitions"][3].__setitem__(1, "0xb0800"), "multiples of 0x1000"),
        (lambda p: p["partitions"][3].__setitem__(2, "0x60000"), "past flash_size"),
        (lambda p: p["partitions"].pop(3), "needs a 'storage' partition"),
        (lambda p: p["partitions"][3].__setitem__(0, "lfs"), "labels are mcuboot, image-0"),
        (lambda p: p["partitions"][0].append("0x0"), "must be [label, offset, size]"),
    ],
)
def test_a_bad_nrf_profile_is_refused_with_the_key_named(change, message):
    with pytest.raises(boards.BoardError) as err:
        boards.validate(_nrf(change), "boards/x/board.json")
    assert message in str(err.value)
