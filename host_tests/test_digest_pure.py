# The pure-Python digests, fota.core.md5 and fota.core.sha256, for ports whose hashlib lacks them:
# the RFC 1321 and FIPS 180-2 vectors on each block function this runtime has (viper on the
# MicroPython unix port, plain Python everywhere), updates split at every awkward boundary, the
# kernel choice, and no allocation in update() with the viper kernel.

import binascii
import gc
import hashlib
import sys

import micropython
from dual import is_micropython
from test_digest import RFC1321  # RFC 1321, appendix A.5

from fota.core import digest, md5, sha256, viper
from fota.core.digest import Digests

RUN_ON_MICROPYTHON = True

# FIPS 180-2, appendix B: one block, two blocks (the 448-bit message), and one million "a".
_SHA256_VECTORS = (
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
)
_MILLION_A_SHA256 = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
_MILLION_A_MD5 = "7707d6ae4e027c70eea2a935c2296f21"


def _hex(raw):
    return binascii.hexlify(raw).decode()


def _data(n, seed=7):
    return bytes((i * 31 + seed + (i >> 8)) & 0xFF for i in range(n))


def _kernels(module):
    """(name, block function) of each kernel this runtime can run for module."""
    out = [("plain", module._blocks_py)]
    if module._blocks is not module._blocks_py:
        out.append(("viper", module._blocks))
    return out


def _each_kernel(module, check):
    """Run check(name) once per kernel, with module's class using that kernel."""
    chosen = module._blocks
    try:
        for name, blocks in _kernels(module):
            module._blocks = blocks
            check(name)
    finally:
        module._blocks = chosen


def _million_a(cls):
    """The digest of one million "a", fed in 1000-byte pieces (through the partial-block path)."""
    piece = memoryview(b"a" * 1000)
    h = cls()
    for _ in range(1000):
        h.update(piece)
    return _hex(h.digest())


def test_the_viper_kernel_is_chosen_where_the_port_has_the_emitter():
    expected = "viper" if is_micropython() else "plain"
    assert md5.KERNEL == expected, (md5.KERNEL, sys.implementation)
    assert sha256.KERNEL == expected, (sha256.KERNEL, sys.implementation)
    assert len(_kernels(md5)) == (2 if is_micropython() else 1)


def test_native_arch_from_the_mpy_version():
    if not is_micropython():
        assert viper.native_arch() is None
        return
    # the unix builds: x64 (arch 2) and i386 (arch 1, x86), both with a native emitter
    expected = 1 if sys.maxsize == 2**31 - 1 else 2
    assert viper.native_arch() == expected, sys.implementation


def test_compile_refuses_quietly_where_there_is_no_viper():
    source = "@micropython.viper\ndef f(x: int) -> int:\n    return x + 1\n"
    f = viper.compile(source, "f", {})
    if is_micropython():  # both unix builds have the emitter
        assert f is not None and f(41) == 42
    else:
        assert f is None


def test_md5_rfc1321_suite_on_every_kernel():
    def check(kernel):
        for message, expected in RFC1321:
            assert _hex(md5.md5(message).digest()) == expected, (kernel, message)
            h = md5.md5()
            for i in range(len(message)):  # byte by byte: every fill of the block buffer
                h.update(message[i : i + 1])
            assert _hex(h.digest()) == expected, (kernel, message)

    _each_kernel(md5, check)


def test_sha256_fips_vectors_on_every_kernel():
    def check(kernel):
        for message, expected in _SHA256_VECTORS:
            assert _hex(sha256.sha256(message).digest()) == expected, (kernel, message)
            h = sha256.sha256()
            for i in range(len(message)):
                h.update(message[i : i + 1])
            assert _hex(h.digest()) == expected, (kernel, message)

    _each_kernel(sha256, check)


def test_one_million_a_on_the_chosen_kernel():
    # The plain kernel on a 32-bit MicroPython takes minutes for a megabyte: the chosen kernel
    # only (viper on the unix port, plain on CPython).
    assert _million_a(sha256.sha256) == _MILLION_A_SHA256
    assert _million_a(md5.md5) == _MILLION_A_MD5


def test_split_updates_and_padding_boundaries_match_hashlib():
    data = _data(400)

    def check(kernel):
        for cls, ref in ((md5.md5, hashlib.md5), (sha256.sha256, hashlib.sha256)):
            expected = ref(data).digest()
            for sizes in ((1, 63, 64, 65), (63, 1, 65, 64), (64, 64, 1), (65, 63), (128, 2)):
                h = cls()
                pos = 0
                for n in sizes:
                    h.update(data[pos : pos + n])
                    pos += n
                h.update(memoryview(data)[pos:])  # the rest as a memoryview slice
                assert h.digest() == expected, (kernel, cls, sizes)
            for n in (0, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129):
                piece = data[:n]
                assert cls(bytearray(piece)).digest() == ref(piece).digest(), (kernel, cls, n)

    _each_kernel(md5, lambda kernel: _each_kernel(sha256, check))


def test_digest_does_not_finalise():
    for cls, ref in ((md5.md5, hashlib.md5), (sha256.sha256, hashlib.sha256)):
        h = cls(b"abc")
        assert h.digest() == h.digest()
        h.update(b"def")
        assert h.digest() == ref(b"abcdef").digest()


def test_viper_update_allocates_nothing_under_heap_lock():
    if not is_micropython():
        return  # CPython runs the plain kernel, whose ints are objects: nothing to prove there
    buf = bytearray(_data(4096))
    mv = memoryview(buf)
    odd = mv[5:4001]  # unaligned start, a partial last block
    h5 = md5.md5()
    h256 = sha256.sha256()
    gc.collect()
    before = gc.mem_alloc()
    micropython.heap_lock()
    try:
        for _ in range(8):
            h5.update(mv)
            h5.update(odd)
            h256.update(mv)
            h256.update(odd)
    finally:
        micropython.heap_unlock()
    assert gc.mem_alloc() == before, "update() allocated %d bytes" % (gc.mem_alloc() - before)
    whole = (bytes(buf) + bytes(odd)) * 8
    assert h5.digest() == hashlib.md5(whole).digest()
    assert h256.digest() == hashlib.sha256(whole).digest()


class _NoHashlibMd5:  # a port whose hashlib has neither md5 nor sha256
    pass


def test_digests_fall_back_to_the_pure_digests():
    data = _data(5000)
    real = digest.hashlib
    for stand_in in (_NoHashlibMd5, None):  # a hashlib without them, or no hashlib at all
        digest.hashlib = stand_in
        try:
            d = Digests(
                md5=_hex(hashlib.md5(data).digest()),
                sha256=_hex(hashlib.sha256(data).digest()),
                prefix=4096,
            )
            assert isinstance(d._md5, md5.md5) and isinstance(d._sha256, sha256.sha256)
            d.update(memoryview(data)[:4096])
            d.update(data[4096:])
            d.verify()
            h, n = d.prefix()
            assert n == 4096 and h.digest() == hashlib.sha256(data[:4096]).digest()
        finally:
            digest.hashlib = real


def test_digests_on_the_pure_digests_allocate_nothing_per_chunk():
    # The engine's per-chunk call, Digests.feeder() or update(), on a port without hashlib: with
    # the viper kernels it allocates nothing either (the download loop's promise).
    if not is_micropython():
        return  # CPython runs the plain kernels; heap_lock() is the unix port's
    buf = bytearray(_data(4096))
    mv = memoryview(buf)
    whole = bytes(buf) * 16
    real = digest.hashlib
    digest.hashlib = None
    try:
        both = Digests(
            md5=_hex(hashlib.md5(whole).digest()), sha256=_hex(hashlib.sha256(whole).digest())
        )
        one = Digests(md5=_hex(hashlib.md5(whole).digest()))
        feed = one.feeder()
    finally:
        digest.hashlib = real
    gc.collect()
    before = gc.mem_alloc()
    micropython.heap_lock()
    try:
        for _ in range(16):
            both.update(mv)
            feed(mv)
    finally:
        micropython.heap_unlock()
    assert gc.mem_alloc() == before, "allocated %d bytes" % (gc.mem_alloc() - before)
    both.verify()
    one.verify()
