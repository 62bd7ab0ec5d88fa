"""Our ESP-IDF format code against independent readers: esptool, zlib and a hand-made table."""

import binascii
import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path

import espidf
import pytest
from esptool.bin_image import LoadFirmwareImage

ROOT = Path(__file__).resolve().parent.parent
ESPTOOL = Path(sys.executable).with_name("esptool")


@pytest.mark.parametrize(
    ("chip", "hashed"), [("esp32", True), ("esp32s3", False), ("esp32c3", True)]
)
def test_app_images_parse_and_verify_in_esptool(tmp_path, chip, hashed):
    image = espidf.make_app_image("3.1.4", chip=chip, size=50000, hash_appended=hashed)
    path = tmp_path / "app.bin"
    path.write_bytes(image)
    parsed = LoadFirmwareImage(chip, str(path))
    assert parsed.chip_id == espidf.CHIP_IDS[chip]
    assert parsed.checksum == parsed.calculate_checksum()
    assert bool(parsed.append_digest) == hashed
    if hashed:
        assert parsed.stored_digest == parsed.calc_digest
    desc = parsed.segments[0].data[:256]
    assert struct.unpack_from("<I", desc)[0] == espidf.APP_DESC_MAGIC
    assert desc[16:21] == b"3.1.4"
    # Our own reader agrees on the length and the version.
    read = lambda off, n: image[off : off + n]  # noqa: E731
    assert espidf.image_length(read, len(image), espidf.CHIP_IDS[chip]) == len(image)
    assert espidf.app_version(read) == "3.1.4"


def test_esptool_image_info_reports_valid(tmp_path):
    path = tmp_path / "app.bin"
    path.write_bytes(espidf.make_app_image("1.0.0"))
    proc = subprocess.run(
        [str(ESPTOOL), "--chip", "esp32", "image-info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "(valid)" in proc.stdout and "(invalid" not in proc.stdout


def test_corrupt_image_is_rejected_by_both_readers(tmp_path):
    image = bytearray(espidf.make_app_image("1.0.0", size=20000))
    image[5000] ^= 0x01
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(image))
    parsed = LoadFirmwareImage("esp32", str(path))
    assert parsed.checksum != parsed.calculate_checksum()
    with pytest.raises(ValueError, match="checksum"):
        espidf.image_length(lambda off, n: bytes(image[off : off + n]), len(image), 0)


def test_otadata_crc_is_esp_rom_crc32_of_the_sequence():
    # ESP-IDF: crc = esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4), i.e. zlib's CRC-32 with the
    # initial value inverted. Known values from erased-and-set otadata on real boards: seq 1 and 2.
    assert espidf.ota_crc(1) == 0x4743989A
    assert espidf.ota_crc(2) == 0x55F63774
    entry = espidf.pack_ota_entry(7, espidf.OTA_IMG_VALID)
    assert len(entry) == 32
    seq, label, state, crc = struct.unpack("<I20sII", entry)
    assert (seq, label, state) == (7, b"\xff" * 20, espidf.OTA_IMG_VALID)
    assert crc == binascii.crc32(struct.pack("<I", 7), 0xFFFFFFFF)
    assert espidf.parse_ota_entry(entry) == (7, espidf.OTA_IMG_VALID, True)
    broken = entry[:28] + b"\x00\x00\x00\x00"
    assert espidf.parse_ota_entry(broken)[2] is False


def test_partition_table_layout_matches_the_esp_idf_binary_format():
    profile = json.loads((ROOT / "boards" / "esp32" / "board.json").read_text())
    table = espidf.pack_partition_table(espidf.profile_entries(profile))
    assert len(table) == 0xC00
    # Row for ota_0 as gen_esp32part.py writes it: magic, type, subtype, offset, size, label, flags
    row = table[3 * 32 : 4 * 32]
    assert row == struct.pack("<2sBBLL16sL", b"\xaa\x50", 0, 0x10, 0x10000, 0x180000, b"ota_0", 0)
    md5_row = table[6 * 32 : 7 * 32]
    assert md5_row[:2] == b"\xeb\xeb" and md5_row[2:16] == b"\xff" * 14
    assert md5_row[16:] == hashlib.md5(table[: 6 * 32]).digest()
    assert set(table[7 * 32 :]) == {0xFF}
    assert espidf.parse_partition_table(table) == espidf.profile_entries(profile)
    corrupt = bytearray(table)
    corrupt[40] ^= 1
    with pytest.raises(ValueError, match="MD5"):
        espidf.parse_partition_table(bytes(corrupt))


def test_the_stand_ins_private_constants_are_espidfs():
    # espflash.py and the esp32 stand-in keep ESP-IDF's values as private const()s (no name on
    # the virtual board's heap); on CPython those names exist, and must equal espidf's
    import esp32
    import espflash

    for module in (espflash, esp32):
        private = {
            n[1:]: v for n, v in vars(module).items() if n.startswith("_") and n[1:].isupper()
        }
        shared = {
            n: v for n, v in private.items() if hasattr(espidf, n) or hasattr(espidf, "_" + n)
        }
        assert len(shared) >= 10, (module.__name__, sorted(private))
        for name, value in shared.items():
            assert getattr(espidf, name, getattr(espidf, "_" + name, None)) == value, name
