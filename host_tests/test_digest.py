# fota.core.md5 (RFC 1321) and fota.core.digest: offer validation, incremental hashing,
# verification,
# hashing a slot back from flash, and the no-allocation promise of Digests.update().

import binascii
import gc
import hashlib

import esp32
import micropython
from dual import fails, is_micropython, new_board, raises, rmtree

from fota.core import digest
from fota.core.digest import Digests, hash_slot
from fota.core.errors import FLASH, PROTOCOL, VERIFY
from fota.core.md5 import md5

RUN_ON_MICROPYTHON = True

# RFC 1321, appendix A.5 ("test suite"); test_digest_pure.py runs it on the pure MD5 too.
RFC1321 = (
    (b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (b"a", "0cc175b9c0f1b6a831c399e269772661"),
    (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
    (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    (
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "d174ab98d277d9f5a5611c2c9f419d9f",
    ),
    (b"1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
)


def _data(n, seed=7):
    return bytes((i * 31 + seed + (i >> 8)) & 0xFF for i in range(n))


def _hex(raw):
    return binascii.hexlify(raw).decode()


def _md5_hex(data):
    return _hex(hashlib.md5(data).digest())


def _sha256_hex(data):
    return _hex(hashlib.sha256(data).digest())


# --- fota.core.md5 --------------------------------------------------------------------------------


def test_md5_rfc1321_test_suite():
    for message, expected in RFC1321:
        assert _hex(md5(message).digest()) == expected, message
        h = md5()
        h.update(message)
        assert _hex(h.digest()) == expected, message


def test_md5_updates_split_at_awkward_boundaries_match_hashlib():
    data = _data(400)
    expected = hashlib.md5(data).digest()
    for sizes in ((1, 63, 64, 65), (63, 1, 65, 64), (64, 64, 1), (65, 63), (128, 2), (0, 200)):
        h = md5()
        pos = 0
        for n in sizes:
            h.update(data[pos : pos + n])
            pos += n
        h.update(memoryview(data)[pos:])  # the rest as a memoryview
        assert h.digest() == expected, sizes
    h = md5(bytearray(data[:65]))
    h.update(memoryview(bytearray(data))[65:])
    assert h.digest() == expected


def test_md5_padding_boundaries_match_hashlib():
    for n in (55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000):
        data = _data(n, n)
        assert md5(data).digest() == hashlib.md5(data).digest(), n


def test_md5_digest_does_not_finalise():
    h = md5(b"abc")
    assert h.digest() == h.digest()
    h.update(b"def")
    assert h.digest() == hashlib.md5(b"abcdef").digest()


# --- Digests: the offer's values ---------------------------------------------------------------


def test_offer_digests_are_validated_and_name_the_field():
    exc = fails(PROTOCOL, Digests, md5="abc")
    assert "md5" in exc.message and "32 hex digits" in exc.message
    exc = fails(PROTOCOL, Digests, md5="0" * 31 + "g")
    assert "md5" in exc.message and "hexadecimal" in exc.message
    exc = fails(PROTOCOL, Digests, sha256="0" * 63)
    assert "sha256" in exc.message and "64 hex digits" in exc.message
    exc = fails(PROTOCOL, Digests, sha256="z" * 64)
    assert "sha256" in exc.message and "hexadecimal" in exc.message
    exc = fails(PROTOCOL, Digests, md5="0" * 32, sha256=1234)
    assert "sha256" in exc.message
    assert exc.reason == "protocol"
    fails(PROTOCOL, Digests, md5="")  # empty is malformed; "not offered" is None


def test_offer_digests_any_case_and_whitespace():
    d = Digests(md5="  " + _md5_hex(b"abc").upper() + "\n", sha256="\t" + _sha256_hex(b"abc"))
    assert d.md5 == _md5_hex(b"abc") and d.sha256 == _sha256_hex(b"abc")
    d.update(b"abc")
    d.verify()


# --- Digests: hashing and verification ---------------------------------------------------------


def test_verify_passes_for_the_right_data_fed_in_chunks():
    data = _data(10000)
    d = Digests(md5=_md5_hex(data), sha256=_sha256_hex(data))
    mv = memoryview(data)
    for pos in range(0, len(data), 4096):
        d.update(mv[pos : pos + 4096])
    assert d.length == 10000
    d.verify()
    d.verify()  # again: the computed values are kept
    assert d.hexdigests() == {"md5": _md5_hex(data), "sha256": _sha256_hex(data)}


def test_feeder_hashes_as_update_does_for_every_configuration():
    data = _data(10000)
    md5, sha = _md5_hex(data), _sha256_hex(data)
    for kwargs in ({"md5": md5}, {"sha256": sha}, {"md5": md5, "sha256": sha},
                   {"md5": md5, "prefix": 5000}):  # fmt: skip
        d = Digests(**kwargs)
        feed = d.feeder()
        mv = memoryview(data)
        d.update(mv[:4096])  # both ways into the same hashes, as the engine does
        for pos in range(4096, len(data), 4096):
            feed(mv[pos : pos + 4096])
        d.verify()
        if "prefix" in kwargs:  # the prefix needs update()'s bookkeeping: no shortcut
            assert feed == d.update and d.prefix()[1] == 4096
    bad = Digests(md5=_md5_hex(b"other"))
    bad.feeder()(data)
    fails(VERIFY, bad.verify)


def test_verify_names_algorithm_expected_and_computed():
    data = _data(300)
    wrong = _sha256_hex(b"other")
    d = Digests(md5=_md5_hex(data), sha256=wrong.upper())
    d.update(data)
    exc = fails(VERIFY, d.verify)
    assert exc.message == "sha256 mismatch: expected %s, computed %s" % (wrong, _sha256_hex(data))
    assert exc.reason == "verify"

    d = Digests(md5=_md5_hex(b"other"))
    d.update(data)
    exc = fails(VERIFY, d.verify)
    assert exc.message == "md5 mismatch: expected %s, computed %s" % (
        _md5_hex(b"other"),
        _md5_hex(data),
    )


def test_only_configured_algorithms_are_hashed():
    d = Digests(sha256=_sha256_hex(b"x"))
    d.update(b"x")
    assert d.hexdigests() == {"sha256": _sha256_hex(b"x")}
    d.verify()


def test_reset_starts_over_with_new_hashes():
    data = _data(5000)
    d = Digests(md5=_md5_hex(data), sha256=_sha256_hex(data))
    d.update(b"junk from before the reboot")
    fails(VERIFY, d.verify)
    d.reset()
    assert d.length == 0
    d.update(data)
    d.verify()


class _NoMd5Hashlib:  # a port whose hashlib has sha256 only
    sha256 = hashlib.sha256


def test_pure_python_md5_when_hashlib_has_none():
    data = _data(3000)
    real = digest.hashlib
    digest.hashlib = _NoMd5Hashlib
    try:
        d = Digests(md5=_md5_hex(data), sha256=_sha256_hex(data))
        assert isinstance(d._md5, md5)
        d.update(memoryview(data)[:100])
        d.update(data[100:])
        d.verify()
        bad = Digests(md5=_md5_hex(b"x"))
        bad.update(data)
        assert fails(VERIFY, bad.verify).message.startswith("md5 mismatch")
    finally:
        digest.hashlib = real


def test_update_allocates_nothing_under_heap_lock():
    buf = bytearray(_data(4096))
    mv = memoryview(buf)
    whole = bytes(buf) * 64
    d = Digests(md5=_md5_hex(whole), sha256=_sha256_hex(whole))
    on_unix_port = is_micropython()
    if on_unix_port:  # the lock is real: an allocation under it raises MemoryError
        micropython.heap_lock()
        try:
            caught = False
            try:
                bytearray(16)
            except MemoryError:
                caught = True
        finally:
            micropython.heap_unlock()
        assert caught, "heap_lock() did not stop an allocation"
    gc.collect()
    before = gc.mem_alloc() if on_unix_port else 0
    failure = None
    micropython.heap_lock()
    try:
        for _ in range(32):
            d.update(mv)
    except MemoryError as exc:
        failure = exc
    finally:
        micropython.heap_unlock()
    assert failure is None, "Digests.update() allocated under heap_lock"
    for _ in range(32):  # the same loop without the lock: the heap does not grow either
        d.update(mv)
    if on_unix_port:
        assert gc.mem_alloc() - before == 0, "update() allocated %d bytes" % (
            gc.mem_alloc() - before
        )
    assert d.length == len(whole)
    d.verify()


def test_prefix_hash_covers_the_whole_updates_up_to_its_cap():
    # The slot's image check takes a SHA-256 of the first bytes; updates that would cross the
    # cap are left out, and so is everything after them, so the hash is of a prefix.
    data = _data(10000)
    d = Digests(md5=_md5_hex(data), prefix=9000)
    for pos in range(0, 10000, 4096):
        d.update(data[pos : pos + 4096])
    h, n = d.prefix()
    assert n == 8192 and d.length == 10000
    assert h.digest() == hashlib.sha256(data[:8192]).digest()
    d.verify()  # the offer's digests are not touched by it
    d = Digests(md5=_md5_hex(data), prefix=1000)
    d.update(data[:500])
    d.update(data[500:1500])  # crosses the cap: left out, and so is the rest
    d.update(data[1500:1600])
    h, n = d.prefix()
    assert n == 500 and h.digest() == hashlib.sha256(data[:500]).digest()
    assert Digests(md5=_md5_hex(data)).prefix() is None
    d = Digests(sha256=_sha256_hex(data), prefix=20000)
    d.update(b"stale")
    d.reset()  # a resume: the prefix starts over with the slot's re-hash
    d.update(data)
    assert d.prefix()[1] == 10000 and d.prefix()[0].digest() == hashlib.sha256(data).digest()


# --- hash_slot ---------------------------------------------------------------------------------


def _slot_with(data):
    tmp, _ = new_board(version="1.0.0")
    slot = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    n = (len(data) + 4095) // 4096 * 4096
    buf = bytearray(b"\xff" * n)
    buf[: len(data)] = data
    slot.writeblocks(0, buf)
    return tmp, slot


def test_hash_slot_rehashes_the_written_part_for_a_resume():
    data = _data(20000)
    tmp, slot = _slot_with(data[:12288])  # three blocks committed before the "power cut"
    try:
        scratch = bytearray(4096)
        d = Digests(md5=_md5_hex(data), sha256=_sha256_hex(data))
        d.update(b"stale")
        d.reset()
        hash_slot(slot.readblocks, 12288, d, scratch)
        assert d.length == 12288
        d.update(data[12288:])  # the rest of the download
        d.verify()
    finally:
        esp32.detach()
        rmtree(tmp)


def test_hash_slot_short_last_block_and_read_back():
    data = _data(10001, 3)
    tmp, slot = _slot_with(data)
    try:
        scratch = bytearray(8192)  # larger than needed is fine
        for n in (0, 1, 4095, 4096, 4097, 10001):
            d = Digests(md5=_md5_hex(data[:n]), sha256=_sha256_hex(data[:n]))
            hash_slot(slot.readblocks, n, d, scratch)
            assert d.length == n
            d.verify()
        d = Digests(sha256=_sha256_hex(data))
        hash_slot(slot.readblocks, 10002, d, scratch)  # one 0xFF byte too many
        fails(VERIFY, d.verify)
        h = hashlib.sha256()  # any object with update() will do
        hash_slot(slot.readblocks, 10001, h, scratch)
        assert h.digest() == hashlib.sha256(data).digest()
        raises(ValueError, hash_slot, slot.readblocks, 10, Digests(), bytearray(4095))
    finally:
        esp32.detach()
        rmtree(tmp)


class _BrokenPart:
    def readblocks(self, block, buf, offset=0):
        if block == 2:
            raise OSError(5, "EIO")


def test_hash_slot_read_failure_is_a_flash_error():
    exc = fails(FLASH, hash_slot, _BrokenPart().readblocks, 20000, Digests(), bytearray(4096))
    assert "offset 8192" in exc.message
    assert exc.reason == "flash"


class _QuietPart:  # readblocks that allocates nothing, to count hash_slot's own allocations
    def readblocks(self, block, buf, offset=0):
        return None


def _hash_of_quiet_part(blocks):
    """(bytes allocated or None off MicroPython, sha256) of hash_slot over a quiet part."""
    h = hashlib.sha256()
    scratch = bytearray(4096)
    part = _QuietPart()
    gc.collect()
    before = gc.mem_alloc() if is_micropython() else None
    hash_slot(part.readblocks, blocks * 4096 + 100, h, scratch)
    used = None if before is None else gc.mem_alloc() - before
    return used, h.digest()


def test_hash_slot_allocation_does_not_grow_with_length():
    small, small_hash = _hash_of_quiet_part(2)
    large, large_hash = _hash_of_quiet_part(40)
    assert small_hash == hashlib.sha256(bytes(2 * 4096 + 100)).digest()
    assert large_hash == hashlib.sha256(bytes(40 * 4096 + 100)).digest()
    # gc.mem_alloc() is exact on MicroPython only: there, the count must not depend on the length.
    assert small == large, "hash_slot allocates per block: %s vs %s bytes" % (small, large)
