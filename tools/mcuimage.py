"""MCUboot test images of a given version and size, built with imgtool, and a reader for them.

    python tools/mcuimage.py build OUT --version 2.0.0 --size 300000 [--sign [--key PEM]]
            [--key-type ecdsa-p256|ed25519] [--header-size 0x200] [--slot-size BYTES]
            [--align 4] [--max-align 8] [--pad | --test | --confirm] [--seed TEXT]
    python tools/mcuimage.py keygen KEY.pem [--key-type ecdsa-p256|ed25519]
    python tools/mcuimage.py info IMAGE [--max-align 8] [--key PEM]

build: a payload of --size bytes of deterministic pseudo-random content (SHA-256 in counter mode
over --seed, by default the version, so the same options give the same bytes and two versions
differ), signed by `imgtool sign` with --pad-header: the header area is --header-size bytes, and
the image is hash-only (a SHA-256 TLV and nothing else) unless --sign is given. --sign without
--key signs with a test key that is generated once into .build/mcuboot-keys/ (never commit it:
it is a test key for tests, the demo and trials on a bench). The version is
major.minor.revision+build as imgtool takes it (the build number defaults to 0). --slot-size is
the secondary slot's size: imgtool refuses an image that does not fit with its trailer; --pad
writes the image padded to the slot with the trailer's magic (a swap request), --test the same,
--confirm also sets image_ok (a permanent one). --align is the flash write alignment the trailer
is laid out for. The image is read back with tools/mcuboot_image.py before the tool says ok.

keygen: a new private key (PEM) with `imgtool keygen`. info: the header, TLVs, version, hash
verdict and, for a padded image, the trailer, as JSON; with --key PEM also the signature's
verdict (cryptography's ECDSA P-256 and ed25519, as MCUboot checks them).

Errors: `mcuimage: message` on stderr, exit status 1; nothing is written on error.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cli
import mcuboot_image

ROOT = Path(__file__).resolve().parent.parent
KEY_DIR = ROOT / ".build" / "mcuboot-keys"
KEY_TYPES = ("ecdsa-p256", "ed25519")
IMGTOOL_TIMEOUT_S = 120
DEFAULT_HEADER = 0x200
DEFAULT_SLOT = 0x100000  # large enough for any test image unless the caller names its slot


class McuImageError(cli.ToolError):
    pass


def imgtool():
    """The imgtool command beside this Python (the .venv), else on PATH."""
    beside = Path(sys.executable).with_name("imgtool")
    if beside.exists():
        return str(beside)
    found = shutil.which("imgtool")
    if found is None:
        raise McuImageError("no imgtool: run `make setup` (it is in requirements.txt)")
    return found


def _imgtool(*args):
    try:
        proc = subprocess.run(
            [imgtool(), *args], capture_output=True, text=True, timeout=IMGTOOL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise McuImageError(
            "imgtool %s timed out after %d s" % (args[0], IMGTOOL_TIMEOUT_S)
        ) from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise McuImageError("imgtool %s failed: %s" % (args[0], lines[-1] if lines else "?"))
    return proc


def parse_version(text):
    """'major.minor.revision[+build]' -> (major, minor, revision, build), in MCUboot's ranges."""
    main, plus, build = text.partition("+")
    parts = main.split(".")
    try:
        if len(parts) != 3 or (plus and not build):
            raise ValueError
        major, minor, revision = (int(p) for p in parts)
        number = int(build) if plus else 0
    except ValueError:
        raise McuImageError("--version %s: expected major.minor.revision[+build]" % text) from None
    if not (0 <= major < 256 and 0 <= minor < 256 and 0 <= revision < 65536):
        raise McuImageError("--version %s: out of range (u8.u8.u16+u32)" % text)
    if not 0 <= number < 2**32:
        raise McuImageError("--version %s: out of range (u8.u8.u16+u32)" % text)
    return major, minor, revision, number


def payload(size, seed):
    """size bytes of SHA-256 in counter mode over seed: deterministic, incompressible."""
    out = bytearray()
    counter = 0
    key = seed.encode()
    while len(out) < size:
        out += hashlib.sha256(key + counter.to_bytes(8, "little")).digest()
        counter += 1
    return bytes(out[:size])


def keygen(path, key_type):
    if key_type not in KEY_TYPES:
        raise McuImageError("--key-type must be one of %s" % ", ".join(KEY_TYPES))
    path = Path(path)
    if path.exists():
        raise McuImageError("%s exists: not overwriting a key" % path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _imgtool("keygen", "-k", str(path), "-t", key_type)
    return path


def test_key(key_type):
    """The test key of key_type in .build/mcuboot-keys, generated the first time."""
    path = KEY_DIR / ("test-%s.pem" % key_type)
    if not path.exists():
        tmp = KEY_DIR / ("test-%s.%d.tmp" % (key_type, os.getpid()))
        keygen(tmp, key_type)
        tmp.replace(path)  # atomic: a concurrent build sees a whole key or none
    return path


def build(out, version, size, *, header_size=DEFAULT_HEADER, slot_size=DEFAULT_SLOT, align=None,
          max_align=None, sign=False, key=None, key_type="ecdsa-p256", pad=False, test=False,
          confirm=False, seed=None):  # fmt: skip
    """Write an MCUboot image to out and return its mcuboot_image.Image (checked)."""
    parse_version(version)
    if size < 0:
        raise McuImageError("--size must be 0 or more")
    if header_size < mcuboot_image.HEADER_SIZE or header_size > 0xFFFF:
        raise McuImageError("--header-size must be 32 to 65535 bytes")
    if key is not None:
        sign = True
    if sign and key is None:
        key = test_key(key_type)
    if key is not None and not Path(key).is_file():
        raise McuImageError("--key %s: no such file" % key)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="mcuimage-") as tmp:
        raw = Path(tmp) / "payload.bin"
        raw.write_bytes(payload(size, seed if seed is not None else version))
        made = Path(tmp) / "image.bin"
        args = ["sign", "--version", version, "--header-size", str(header_size), "--pad-header",
                "--slot-size", str(slot_size)]  # fmt: skip
        if align is not None:
            args += ["--align", str(align)]
        if max_align is not None:
            args += ["--max-align", str(max_align)]
        if key is not None:
            args += ["--key", str(key)]
        if confirm:
            args.append("--confirm")
        elif test:
            args.append("--test")
        elif pad:
            args.append("--pad")
        _imgtool(*args, str(raw), str(made))
        data = made.read_bytes()
        try:
            image = mcuboot_image.check(data)
        except mcuboot_image.ImageError as exc:
            raise McuImageError("imgtool made an image that does not check out: %s" % exc) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(".%s.%d.tmp" % (out.name, os.getpid()))
    tmp.write_bytes(data)
    tmp.replace(out)
    return image


def public_key(key_path):
    """The public half of a PEM key file (private or public); McuImageError naming the file."""
    from cryptography.hazmat.primitives import serialization

    try:
        pem = Path(key_path).read_bytes()
    except OSError as exc:
        raise McuImageError("cannot read %s: %s" % (key_path, exc.strerror or exc)) from None
    try:
        return serialization.load_pem_private_key(pem, None).public_key()
    except (ValueError, TypeError):
        try:
            return serialization.load_pem_public_key(pem)
        except ValueError:
            raise McuImageError("%s is not a PEM key" % key_path) from None


def signature(data, image, key_path):
    """ "good", "bad" or "unsigned": the image's signature TLV checked with the public half of
    key_path (a PEM private or public key), as MCUboot checks it: ECDSA P-256 over the hashed
    bytes, ed25519 over their SHA-256; "bad" also when the key-hash TLV names another key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = public_key(key_path)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ecdsa = image.tlv(mcuboot_image.TLV_ECDSA_SIG)
    ed25519 = image.tlv(mcuboot_image.TLV_ED25519)
    if ecdsa is None and ed25519 is None:
        return "unsigned"
    keyhash = image.tlv(mcuboot_image.TLV_KEYHASH)
    if keyhash is not None and keyhash != hashlib.sha256(der).digest():
        return "bad"
    try:
        if ecdsa is not None and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(ecdsa, data[: image.hashed_end], ec.ECDSA(hashes.SHA256()))
        elif (
            ed25519 is not None
            and hasattr(key, "verify")
            and not isinstance(key, ec.EllipticCurvePublicKey)
        ):
            key.verify(ed25519, image.sha256)
        else:
            return "bad"  # a key of another type than the signature
    except InvalidSignature:
        return "bad"
    return "good"


def info(path, max_align=8, key=None):
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise McuImageError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    try:
        image = mcuboot_image.parse(data)
        found = mcuboot_image.trailer(data, max_align)
    except mcuboot_image.ImageError as exc:
        raise McuImageError("%s: %s" % (path, exc)) from None
    summary = image.summary()
    summary["file_size"] = len(data)
    summary["trailer"] = found
    if key is not None:
        summary["signature"] = signature(data, image, key)
    return summary


def _int(text):
    try:
        return int(text, 0)
    except ValueError:
        raise McuImageError("not a number: %s" % text) from None


def main(argv=None):
    ap = cli.Parser(prog="mcuimage", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True, parser_class=cli.Parser)
    b = sub.add_parser("build", help="an image of a version and size")
    b.add_argument("out")
    b.add_argument("--version", required=True, help="major.minor.revision[+build]")
    b.add_argument("--size", required=True, type=_int, help="payload bytes")
    b.add_argument("--header-size", type=_int, default=DEFAULT_HEADER)
    b.add_argument("--slot-size", type=_int, default=DEFAULT_SLOT)
    b.add_argument("--align", type=_int, choices=(1, 2, 4, 8, 16, 32))
    b.add_argument("--max-align", type=_int, choices=(8, 16, 32))
    b.add_argument("--sign", action="store_true", help="sign (with the test key unless --key)")
    b.add_argument("--key", help="a private key PEM (implies --sign)")
    b.add_argument("--key-type", default="ecdsa-p256", choices=KEY_TYPES)
    b.add_argument("--seed", help="payload seed (default: the version)")
    trailer = b.add_mutually_exclusive_group()
    trailer.add_argument("--pad", action="store_true", help="pad to the slot, trailer magic")
    trailer.add_argument("--test", action="store_true", help="same as --pad: a test swap")
    trailer.add_argument("--confirm", action="store_true", help="pad, and set image_ok")
    k = sub.add_parser("keygen", help="a new private key")
    k.add_argument("key")
    k.add_argument("--key-type", default="ecdsa-p256", choices=KEY_TYPES)
    i = sub.add_parser("info", help="what an image (or a padded slot) says, as JSON")
    i.add_argument("image")
    i.add_argument("--max-align", type=_int, default=8, choices=(8, 16, 32))
    i.add_argument("--key", help="check the signature with this key's public half")
    opts = ap.parse_args(argv)
    if opts.command == "build":
        image = build(
            opts.out, opts.version, opts.size, header_size=opts.header_size,
            slot_size=opts.slot_size, align=opts.align, max_align=opts.max_align, sign=opts.sign,
            key=opts.key, key_type=opts.key_type, pad=opts.pad, test=opts.test,
            confirm=opts.confirm, seed=opts.seed,
        )  # fmt: skip
        print(json.dumps({"out": str(opts.out), **image.summary()}, sort_keys=True))
    elif opts.command == "keygen":
        print(keygen(opts.key, opts.key_type))
    else:
        print(json.dumps(info(opts.image, opts.max_align, opts.key), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("mcuimage", main))
