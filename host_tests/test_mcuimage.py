"""tools/mcuimage.py (MCUboot test images with imgtool) and tools/mcuboot_image.py (the reader).

The reader's verdicts are checked against facts computed here independently (struct offsets,
hashlib over the byte ranges, cryptography's signature checks), and the reader is fed broken
images to prove it refuses them."""

import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path

import mcuboot_image
import mcuimage
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "mcuimage.py"
TIMEOUT_S = 120


def _run(*args):
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip


def _build(tmp_path, name, *args):
    out = tmp_path / name
    proc = _run("build", out, *args)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes(), json.loads(proc.stdout)


def test_hash_only_image_header_payload_and_sha256(tmp_path):
    data, said = _build(tmp_path, "a.bin", "--version", "2.1.3+7", "--size", 3000)
    magic, load, hdr, prot, size, flags = struct.unpack_from("<IIHHII", data)
    assert (magic, load, hdr, prot, size, flags) == (0x96F3B83D, 0, 0x200, 0, 3000, 0)
    assert struct.unpack_from("<BBHI", data, 20) == (2, 1, 3, 7)
    assert data[32:0x200] == b"\xff" * (0x200 - 32)  # the header area: erased flash
    assert data[0x200 : 0x200 + 3000] == mcuimage.payload(3000, "2.1.3+7")
    # one unprotected TLV area holding exactly one SHA-256 TLV, over header and payload
    assert struct.unpack_from("<HH", data, 0x200 + 3000) == (0x6907, 4 + 4 + 32)
    assert struct.unpack_from("<HH", data, 0x200 + 3004) == (0x10, 32)
    assert data[0x200 + 3008 :] == hashlib.sha256(data[: 0x200 + 3000]).digest()
    image = mcuboot_image.check(data)
    assert image.version_text == "2.1.3+7" and image.version == (2, 1, 3, 7)
    assert image.sha256_ok and image.signature_type is None
    assert [t for t, _, _ in image.tlvs] == [0x10]
    assert said["version"] == "2.1.3+7" and said["sha256_ok"] and not said["signed"]
    assert said["total_size"] == len(data) == 0x200 + 3000 + 40


def test_same_options_same_bytes_and_versions_differ(tmp_path):
    one, _ = _build(tmp_path, "1.bin", "--version", "1.0.0", "--size", 5000)
    again, _ = _build(tmp_path, "2.bin", "--version", "1.0.0", "--size", 5000)
    other, _ = _build(tmp_path, "3.bin", "--version", "1.0.1", "--size", 5000)
    seeded, _ = _build(tmp_path, "4.bin", "--version", "1.0.1", "--size", 5000, "--seed", "1.0.0")
    assert one == again
    assert one[0x200:5200] != other[0x200:5200]
    assert seeded[0x200:5200] == one[0x200:5200]  # --seed picks the content, not the version
    assert mcuboot_image.check(other).version_text == "1.0.1+0"


def test_header_size_option(tmp_path):
    data, _ = _build(tmp_path, "h.bin", "--version", "3.0.0", "--size", 100, "--header-size", 0x400)
    image = mcuboot_image.check(data)
    assert image.header_size == 0x400 and data[0x400:0x464] == mcuimage.payload(100, "3.0.0")


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ed25519"])
def test_signed_image_verifies_with_its_key_only(tmp_path, key_type):
    key = tmp_path / "key.pem"
    other = tmp_path / "other.pem"
    for path in (key, other):
        assert _run("keygen", path, "--key-type", key_type).returncode == 0
    data, said = _build(tmp_path, "s.bin", "--version", "2.0.0", "--size", 4000, "--key", key)
    image = mcuboot_image.check(data)
    assert (
        said["signed"]
        and image.signature_type == {"ecdsa-p256": "ecdsa", "ed25519": "ed25519"}[key_type]
    )
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    public = private.public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert image.tlv(0x01) == hashlib.sha256(der).digest()  # the key-hash TLV names the key
    if key_type == "ecdsa-p256":
        public.verify(image.tlv(0x22), data[: image.hashed_end], ec.ECDSA(hashes.SHA256()))
    else:
        public.verify(image.tlv(0x24), hashlib.sha256(data[: image.hashed_end]).digest())
    assert mcuimage.info(tmp_path / "s.bin", key=key)["signature"] == "good"
    assert mcuimage.info(tmp_path / "s.bin", key=other)["signature"] == "bad"
    tampered = bytearray(data)
    tampered[0x200 + 10] ^= 1
    (tmp_path / "t.bin").write_bytes(tampered)
    assert mcuimage.info(tmp_path / "t.bin", key=key)["signature"] == "bad"


def test_sign_without_a_key_uses_the_generated_test_key(tmp_path):
    data, said = _build(tmp_path, "d.bin", "--version", "1.2.3", "--size", 600, "--sign")
    key = mcuimage.KEY_DIR / "test-ecdsa-p256.pem"
    assert said["signed"] and key.is_file()
    assert mcuimage.info(tmp_path / "d.bin", key=key)["signature"] == "good"
    hash_only = mcuimage.info(tmp_path / "d.bin")
    assert "signature" not in hash_only and hash_only["sha256_ok"]


def test_a_changed_byte_fails_the_hash(tmp_path):
    data, _ = _build(tmp_path, "c.bin", "--version", "1.0.0", "--size", 2000)
    for where in (4, 0x200, 0x200 + 1999):  # ih_load_addr, first and last payload byte
        bad = bytearray(data)
        bad[where] ^= 0x40
        image = mcuboot_image.parse(bad)
        assert not image.sha256_ok
        with pytest.raises(mcuboot_image.ImageError, match="SHA-256 mismatch"):
            mcuboot_image.check(bad)
    (tmp_path / "bad.bin").write_bytes(bad)
    assert mcuimage.info(tmp_path / "bad.bin")["sha256_ok"] is False


def test_protected_tlvs_are_hashed_and_sized(tmp_path):
    # a security counter is a protected TLV: the SHA-256 covers the protected area too
    raw = tmp_path / "p.raw"
    raw.write_bytes(mcuimage.payload(1000, "x"))
    out = tmp_path / "p.bin"
    mcuimage._imgtool(
        "sign", "--version", "1.0.0", "--header-size", "512", "--pad-header",
        "--slot-size", "65536", "--security-counter", "5", str(raw), str(out),
    )  # fmt: skip
    data = out.read_bytes()
    image = mcuboot_image.check(data)
    prot = struct.unpack_from("<H", data, 10)[0]  # ih_protect_tlv_size
    assert prot > 0 and image.protected_tlv_size == prot
    assert struct.unpack_from("<HH", data, 512 + 1000) == (0x6908, prot)
    assert [(t, p) for t, _, p in image.tlvs][:1] == [(0x50, True)]
    assert image.tlv(0x50) == struct.pack("<I", 5)
    assert image.sha256 == hashlib.sha256(data[: 512 + 1000 + prot]).digest()
    bad = bytearray(data)
    bad[512 + 1000 + 8] ^= 1  # the counter's value: protected, so hashed
    with pytest.raises(mcuboot_image.ImageError, match="SHA-256 mismatch"):
        mcuboot_image.check(bad)


def test_trailers_for_pad_test_and_confirm(tmp_path):
    slot = 0x10000
    magic = bytes.fromhex("77c295f360d2ef7f3552500f2cb67980")
    plain, _ = _build(tmp_path, "n.bin", "--version", "1.0.0", "--size", 5000)
    assert mcuboot_image.trailer(plain) is None
    for flag, image_ok in (("--pad", "unset"), ("--test", "unset"), ("--confirm", "set")):
        data, _ = _build(
            tmp_path, "t.bin", "--version", "1.0.0", "--size", 5000, "--slot-size", slot,
            "--align", 4, flag,
        )  # fmt: skip
        assert len(data) == slot and data[-16:] == magic
        assert data[-24] == (0x01 if flag == "--confirm" else 0xFF)  # image_ok, 8 bytes before
        found = mcuboot_image.trailer(data)
        assert found == {"magic": "good", "image_ok": image_ok, "copy_done": "unset",
                         "swap_info": "unset"}, flag  # fmt: skip
        assert mcuboot_image.check(data).version_text == "1.0.0+0"
    wide, _ = _build(
        tmp_path, "w.bin", "--version", "1.0.0", "--size", 5000, "--slot-size", slot,
        "--max-align", 16, "--align", 16, "--confirm",
    )  # fmt: skip
    assert mcuboot_image.trailer(wide) is None  # another magic when BOOT_MAX_ALIGN is not 8
    assert mcuboot_image.trailer(wide, 16)["image_ok"] == "set"
    assert wide[-16:-14] == struct.pack("<H", 16)


def test_reader_refuses_broken_images(tmp_path):
    data, _ = _build(tmp_path, "r.bin", "--version", "1.0.0", "--size", 300)
    cases = {
        "header magic": bytearray(b"\x00") + bytearray(data[1:]),
        "shorter than an image header": data[:20],
        "past the end": data[: 0x200 + 100],
        "TLV info magic": data[: 0x200 + 300] + b"\x08\x69" + data[0x200 + 302 :],
        "claims": data[: 0x200 + 300] + b"\x07\x69\xff\x00" + data[0x200 + 304 :],
    }
    for expected, broken in cases.items():
        with pytest.raises(mcuboot_image.ImageError, match=expected):
            mcuboot_image.parse(bytes(broken))
    small_hdr = bytearray(data)
    struct.pack_into("<H", small_hdr, 8, 16)
    with pytest.raises(mcuboot_image.ImageError, match="smaller than the 32-byte header"):
        mcuboot_image.parse(small_hdr)
    no_hash = data[: 0x200 + 300] + struct.pack("<HH", 0x6907, 4)
    with pytest.raises(mcuboot_image.ImageError, match="no SHA-256 TLV"):
        mcuboot_image.check(no_hash)


def test_cli_errors_are_one_line_and_write_nothing(tmp_path):
    out = tmp_path / "x.bin"
    cases = [
        (["build", out, "--version", "1.2", "--size", 10], "--version 1.2: expected"),
        (["build", out, "--version", "1.2.3+", "--size", 10], "expected major.minor"),
        (["build", out, "--version", "256.0.0", "--size", 10], "out of range"),
        (["build", out, "--version", "1.0.0", "--size", 70000, "--slot-size", 65536],
         "imgtool sign failed"),
        (["build", out, "--version", "1.0.0", "--size", 10, "--key", tmp_path / "none.pem"],
         "no such file"),
        (["info", tmp_path / "missing.bin"], "cannot read"),
    ]  # fmt: skip
    for args, message in cases:
        proc = _run(*args)
        assert proc.returncode == 1, args
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("mcuimage: ") and message in last, (args, proc.stderr)
        assert not out.exists()
    (tmp_path / "junk.bin").write_bytes(b"\xff" * 64)
    proc = _run("info", tmp_path / "junk.bin")
    assert proc.returncode == 1 and "header magic is 0xffffffff" in proc.stderr
    key = tmp_path / "k.pem"
    key.write_text("x")
    proc = _run("keygen", key)
    assert proc.returncode == 1 and "exists: not overwriting" in proc.stderr
