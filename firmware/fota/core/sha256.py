# SHA-256 (FIPS 180-4) in Python, for ports built without hashlib (or without its sha256).
#
# Same interface as hashlib.sha256: sha256(data=b""), update(buf) with bytes, bytearray or
# memoryview, digest() -> 32 bytes. digest() does not finalise the object (hashlib's does).
#
# As in fota.core.md5: a viper block function where the port has the emitter (no allocation in
# update()), plain Python elsewhere (masked to 32 bits, right everywhere; on 32-bit ports words
# above 2**30 are big ints, slow and allocating). Each object's preallocated array holds the state
# and the viper kernel's 64-word message schedule.

import struct
from array import array

from micropython import const

from fota.core import viper

_BLOCK = const(64)

# The initial state: the first 32 bits of the fractional parts of the square roots of 2..19.
_H0_BE = (
    b"\x6a\x09\xe6\x67\xbb\x67\xae\x85\x3c\x6e\xf3\x72\xa5\x4f\xf5\x3a"
    b"\x51\x0e\x52\x7f\x9b\x05\x68\x8c\x1f\x83\xd9\xab\x5b\xe0\xcd\x19"
)
# The round constants: the first 32 bits of the fractional parts of the cube roots of the first
# 64 primes, big-endian in the text, native words in the array both block functions read.
_K = array(
    "I",
    struct.unpack(
        ">64I",
        b"\x42\x8a\x2f\x98\x71\x37\x44\x91\xb5\xc0\xfb\xcf\xe9\xb5\xdb\xa5\x39\x56\xc2\x5b\x59\xf1\x11\xf1"
        b"\x92\x3f\x82\xa4\xab\x1c\x5e\xd5\xd8\x07\xaa\x98\x12\x83\x5b\x01\x24\x31\x85\xbe\x55\x0c\x7d\xc3"
        b"\x72\xbe\x5d\x74\x80\xde\xb1\xfe\x9b\xdc\x06\xa7\xc1\x9b\xf1\x74\xe4\x9b\x69\xc1\xef\xbe\x47\x86"
        b"\x0f\xc1\x9d\xc6\x24\x0c\xa1\xcc\x2d\xe9\x2c\x6f\x4a\x74\x84\xaa\x5c\xb0\xa9\xdc\x76\xf9\x88\xda"
        b"\x98\x3e\x51\x52\xa8\x31\xc6\x6d\xb0\x03\x27\xc8\xbf\x59\x7f\xc7\xc6\xe0\x0b\xf3\xd5\xa7\x91\x47"
        b"\x06\xca\x63\x51\x14\x29\x29\x67\x27\xb7\x0a\x85\x2e\x1b\x21\x38\x4d\x2c\x6d\xfc\x53\x38\x0d\x13"
        b"\x65\x0a\x73\x54\x76\x6a\x0a\xbb\x81\xc2\xc9\x2e\x92\x72\x2c\x85\xa2\xbf\xe8\xa1\xa8\x1a\x66\x4b"
        b"\xc2\x4b\x8b\x70\xc7\x6c\x51\xa3\xd1\x92\xe8\x19\xd6\x99\x06\x24\xf4\x0e\x35\x85\x10\x6a\xa0\x70"
        b"\x19\xa4\xc1\x16\x1e\x37\x6c\x08\x27\x48\x77\x4c\x34\xb0\xbc\xb5\x39\x1c\x0c\xb3\x4e\xd8\xaa\x4a"
        b"\x5b\x9c\xca\x4f\x68\x2e\x6f\xf3\x74\x8f\x82\xee\x78\xa5\x63\x6f\x84\xc8\x78\x14\x8c\xc7\x02\x08"
        b"\x90\xbe\xff\xfa\xa4\x50\x6c\xeb\xbe\xf9\xa3\xf7\xc6\x71\x78\xf2",
    ),
)


_KP = None  # the plain kernel's copy of _K as a tuple (made at its first use)
_WP = [0] * 64  # the plain kernel's message schedule (a list reads faster than an array)


def _blocks_py(ctx, buf, off, end):
    """Fold the 64-byte blocks of buf[off:end] into ctx[0:8]."""
    global _KP
    k = _KP
    if k is None:  # ints read from a tuple; an array makes a new int per read (big on 32-bit)
        k = _KP = tuple(_K)
    m = 0xFFFFFFFF
    w = _WP
    while off < end:
        for i in range(16):
            w[i] = (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]
            off += 4
        for i in range(16, 64):
            x = w[i - 15]
            y = w[i - 2]
            s0 = ((x >> 7) | (x << 25)) ^ ((x >> 18) | (x << 14)) ^ (x >> 3)
            s1 = ((y >> 17) | (y << 15)) ^ ((y >> 19) | (y << 13)) ^ (y >> 10)
            w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & m
        a = ctx[0]
        b = ctx[1]
        c = ctx[2]
        d = ctx[3]
        e = ctx[4]
        f = ctx[5]
        g = ctx[6]
        h = ctx[7]
        for i in range(64):
            s1 = ((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21)) ^ ((e >> 25) | (e << 7))
            t1 = h + (s1 & m) + (g ^ (e & (f ^ g))) + k[i] + w[i]
            s0 = ((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19)) ^ ((a >> 22) | (a << 10))
            t2 = (s0 & m) + ((a & b) | (c & (a | b)))
            h = g
            g = f
            f = e
            e = (d + t1) & m
            d = c
            c = b
            b = a
            a = (t1 + t2) & m
        ctx[0] = (ctx[0] + a) & m
        ctx[1] = (ctx[1] + b) & m
        ctx[2] = (ctx[2] + c) & m
        ctx[3] = (ctx[3] + d) & m
        ctx[4] = (ctx[4] + e) & m
        ctx[5] = (ctx[5] + f) & m
        ctx[6] = (ctx[6] + g) & m
        ctx[7] = (ctx[7] + h) & m


# The same in viper. Only the words that feed right shifts (a, e and the schedule's loads) must
# be clean 32-bit values; the schedule is cut to 32 bits by its ptr32 stores.
_blocks = (
    viper.compile(
        """
@micropython.viper
def _blocks(ctx: ptr32, buf: ptr8, off: int, end: int):
    k = ptr32(_K)
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    while off < end:
        for i in range(8, 24):
            ctx[i] = (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]
            off += 4
        for i in range(24, 72):
            x = uint(ctx[i - 15])
            y = uint(ctx[i - 2])
            s0 = ((x >> 7) | (x << 25)) ^ ((x >> 18) | (x << 14)) ^ (x >> 3)
            s1 = ((y >> 17) | (y << 15)) ^ ((y >> 19) | (y << 13)) ^ (y >> 10)
            ctx[i] = uint(ctx[i - 16]) + s0 + uint(ctx[i - 7]) + s1
        a = uint(ctx[0])
        b = uint(ctx[1])
        c = uint(ctx[2])
        d = uint(ctx[3])
        e = uint(ctx[4])
        f = uint(ctx[5])
        g = uint(ctx[6])
        h = uint(ctx[7])
        for i in range(64):
            s1 = ((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21)) ^ ((e >> 25) | (e << 7))
            t1 = h + s1 + (g ^ (e & (f ^ g))) + uint(k[i]) + uint(ctx[8 + i])
            s0 = ((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19)) ^ ((a >> 22) | (a << 10))
            t2 = s0 + ((a & b) | (c & (a | b)))
            h = g
            g = f
            f = e
            e = (d + t1) & m
            d = c
            c = b
            b = a
            a = (t1 + t2) & m
        ctx[0] = uint(ctx[0]) + a
        ctx[1] = uint(ctx[1]) + b
        ctx[2] = uint(ctx[2]) + c
        ctx[3] = uint(ctx[3]) + d
        ctx[4] = uint(ctx[4]) + e
        ctx[5] = uint(ctx[5]) + f
        ctx[6] = uint(ctx[6]) + g
        ctx[7] = uint(ctx[7]) + h
""",
        "_blocks",
        {"_K": _K},
    )
    or _blocks_py
)
KERNEL = "plain" if _blocks is _blocks_py else "viper"  # which one this port runs


class sha256:  # noqa: N801 - named like hashlib.sha256, which it stands in for
    def __init__(self, data=b""):
        ctx = array("I", [0] * 72)
        h0 = struct.unpack(">8I", _H0_BE)
        for i in range(8):
            ctx[i] = h0[i]
        self._ctx = ctx  # the state, then the 64-word message schedule
        self._block = bytearray(_BLOCK)
        self._fill = 0  # bytes waiting in _block
        self._count = 0  # bytes hashed so far
        if data:
            self.update(data)

    def update(self, data):
        """Hash data (bytes, bytearray, memoryview); allocates nothing with the viper kernel."""
        n = len(data)
        self._count += n
        self._fill = viper.feed(_blocks, self._ctx, self._block, self._fill, data, n)

    def digest(self):
        ctx = viper.final(_blocks, self._ctx, self._block, self._fill, self._count, ">Q")
        out = bytearray(32)
        for i in range(8):
            struct.pack_into(">I", out, i << 2, ctx[i])
        return bytes(out)
