"""tools/release.py: the cloud-side metadata of an app image, and refusals of what is not one."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import espidf
import pytest

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "tools" / "release.py"


def release(*args):
    return subprocess.run(
        [sys.executable, str(RELEASE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_metadata_of_a_valid_image(tmp_path):
    image = espidf.make_app_image("2.1.0", chip="esp32s3", size=30000, project="demo-app")
    path = tmp_path / "app.bin"
    path.write_bytes(image)
    proc = release(path, "--chip", "esp32s3", "--version", "2.1.0")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)
    assert meta["size"] == len(image)
    assert meta["md5"] == hashlib.md5(image).hexdigest()
    assert meta["sha256"] == hashlib.sha256(image).hexdigest()
    assert (meta["version"], meta["project"], meta["idf_version"]) == (
        "2.1.0",
        "demo-app",
        "v5.2.2",
    )
    assert (meta["chip"], meta["chip_id"], meta["hash_appended"]) == ("esp32s3", 9, True)


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda: b'{"not": "an image"}', (), "not an ESP32 app image (magic 0x7b"),
        (lambda: b"\x00" * 4096, (), "not an ESP32 app image"),
        (lambda: _corrupt(espidf.make_app_image("1.0.0")), (), "checksum mismatch"),
        (lambda: espidf.make_app_image("1.0.0")[:3000], (), "truncated"),
        (
            lambda: espidf.make_app_image("1.0.0"),
            ("--chip", "esp32c3"),
            "is an esp32 image (chip id 0), not esp32c3",
        ),
        (lambda: espidf.make_app_image("1.0.0"), ("--version", "2.0.0"), "says 1.0.0, not 2.0.0"),
    ],
)
def test_what_is_not_a_valid_image_is_refused(tmp_path, make, args, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(make())
    proc = release(path, *args)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("release: ") and message in proc.stderr


def test_a_missing_file_is_one_line():
    proc = release("/nonexistent/app.bin")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "release: /nonexistent/app.bin: No such file or directory"


def _corrupt(image):
    data = bytearray(image)
    data[1000] ^= 0x40
    return bytes(data)


APPIMAGE = ROOT / "tools" / "appimage.py"


def appimage(*args):
    return subprocess.run([sys.executable, str(APPIMAGE), *map(str, args)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize(("chip", "size", "length"), [("esp32", "1500000", 1500000),
                                                      ("esp32c3", "64k", 65536),
                                                      ("esp32s3", "608", 608)])  # fmt: skip
def test_appimage_makes_a_valid_image_of_the_version_and_exact_size(tmp_path, chip, size, length):
    out = tmp_path / "app.bin"
    proc = appimage("--version", "3.4.5", "--size", size, "--chip", chip, "-o", out)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    data = out.read_bytes()
    assert len(data) == length == printed["size"]
    assert printed["md5"] == hashlib.md5(data).hexdigest()
    assert (printed["version"], printed["chip"]) == ("3.4.5", chip)
    again = release(out, "--chip", chip, "--version", "3.4.5")  # what a cloud is told
    assert again.returncode == 0 and json.loads(again.stdout) == printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "1.0.0", "--size", "1001"], "--size must be a multiple of 16"),
        (["--version", "1.0.0", "--size", "592"], "at least 608 bytes"),
        (["--version", "1.0.0", "--size", "lots"], "--size: not a size"),
        (["--version", "x" * 32, "--size", "4096"], "1 to 31 bytes"),
        (["--version", "1.0.0", "--size", "4096", "--chip", "esp8266"], "unknown chip"),
    ],
)
def test_appimage_refuses_what_it_cannot_make_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "app.bin"
    proc = appimage(*args, "-o", out)
    assert proc.returncode == 1 and proc.stderr.startswith("appimage: ") and message in proc.stderr
    assert not out.exists()


def test_metadata_of_an_mcuboot_image_and_what_is_refused(tmp_path):
    import mcuimage

    path = tmp_path / "zephyr.signed.bin"
    mcuimage.build(path, "2.1.0+7", 20000, sign=True)
    data = path.read_bytes()
    proc = release(path, "--version", "2.1.0+7")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)
    assert (meta["format"], meta["version"], meta["signed"]) == ("mcuboot", "2.1.0+7", True)
    assert meta["size"] == len(data) and meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["image_size"] == 20000 and meta["header_size"] == 0x200
    for args, message in (
        (("--version", "2.1.0"), "the MCUboot header says 2.1.0+7, not 2.1.0"),
        (("--chip", "esp32"), "names no chip"),
    ):
        proc = release(path, *args)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    spoiled = bytearray(data)
    spoiled[0x200 + 100] ^= 0xFF  # a payload byte: the SHA-256 TLV no longer matches
    path.write_bytes(bytes(spoiled))
    proc = release(path)
    assert proc.returncode == 1 and "invalid MCUboot image: SHA-256 mismatch" in proc.stderr
