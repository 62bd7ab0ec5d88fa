# MD5 (RFC 1321) in Python, for ports whose hashlib has no md5 (every build without TLS: the
# zephyr and nrf ports among them).
#
# Same interface as hashlib.md5: md5(data=b""), update(buf) with bytes, bytearray or memoryview,
# digest() -> 16 bytes. digest() does not finalise the object, so it may be called again and
# update() may go on afterwards (hashlib's own objects are stricter).
#
# Two block functions with one signature, chosen once at import:
# - viper (compiled by fota.core.viper) where the port has the viper emitter: machine words, no
#   allocation;
# - plain Python elsewhere (CPython, ports without a native emitter, such as zephyr on ARM). Every
#   word is masked to 32 bits, so it is right on every port; on 32-bit ports words above 2**30
#   are big ints, which allocate and make it slow.
# Each object holds its state and the viper kernel's 16 message words in one preallocated array;
# update() takes whole blocks straight from the caller's buffer (a memoryview slice included)
# and copies a partial block byte by byte: with the viper kernel, update() allocates nothing.

import struct
from array import array

from micropython import const

from fota.core import viper

_BLOCK = const(64)

# The rotation of each step, then which message word it adds (rounds 1-4, RFC 1321 section 3.4).
_SX = (
    b"\x07\x0c\x11\x16\x07\x0c\x11\x16\x07\x0c\x11\x16\x07\x0c\x11\x16"
    b"\x05\x09\x0e\x14\x05\x09\x0e\x14\x05\x09\x0e\x14\x05\x09\x0e\x14"
    b"\x04\x0b\x10\x17\x04\x0b\x10\x17\x04\x0b\x10\x17\x04\x0b\x10\x17"
    b"\x06\x0a\x0f\x15\x06\x0a\x0f\x15\x06\x0a\x0f\x15\x06\x0a\x0f\x15"
    b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
    b"\x01\x06\x0b\x00\x05\x0a\x0f\x04\x09\x0e\x03\x08\x0d\x02\x07\x0c"
    b"\x05\x08\x0b\x0e\x01\x04\x07\x0a\x0d\x00\x03\x06\x09\x0c\x0f\x02"
    b"\x00\x07\x0e\x05\x0c\x03\x0a\x01\x08\x0f\x06\x0d\x04\x0b\x02\x09"
)
# T[i] = floor(abs(sin(i + 1)) * 2**32), written out (single-precision float ports get it wrong):
# little-endian in the text, native words in the array both block functions read.
_T = array(
    "I",
    struct.unpack(
        "<64I",
        b"\x78\xa4\x6a\xd7\x56\xb7\xc7\xe8\xdb\x70\x20\x24\xee\xce\xbd\xc1\xaf\x0f\x7c\xf5\x2a\xc6\x87\x47"
        b"\x13\x46\x30\xa8\x01\x95\x46\xfd\xd8\x98\x80\x69\xaf\xf7\x44\x8b\xb1\x5b\xff\xff\xbe\xd7\x5c\x89"
        b"\x22\x11\x90\x6b\x93\x71\x98\xfd\x8e\x43\x79\xa6\x21\x08\xb4\x49\x62\x25\x1e\xf6\x40\xb3\x40\xc0"
        b"\x51\x5a\x5e\x26\xaa\xc7\xb6\xe9\x5d\x10\x2f\xd6\x53\x14\x44\x02\x81\xe6\xa1\xd8\xc8\xfb\xd3\xe7"
        b"\xe6\xcd\xe1\x21\xd6\x07\x37\xc3\x87\x0d\xd5\xf4\xed\x14\x5a\x45\x05\xe9\xe3\xa9\xf8\xa3\xef\xfc"
        b"\xd9\x02\x6f\x67\x8a\x4c\x2a\x8d\x42\x39\xfa\xff\x81\xf6\x71\x87\x22\x61\x9d\x6d\x0c\x38\xe5\xfd"
        b"\x44\xea\xbe\xa4\xa9\xcf\xde\x4b\x60\x4b\xbb\xf6\x70\xbc\xbf\xbe\xc6\x7e\x9b\x28\xfa\x27\xa1\xea"
        b"\x85\x30\xef\xd4\x05\x1d\x88\x04\x39\xd0\xd4\xd9\xe5\x99\xdb\xe6\xf8\x7c\xa2\x1f\x65\x56\xac\xc4"
        b"\x44\x22\x29\xf4\x97\xff\x2a\x43\xa7\x23\x94\xab\x39\xa0\x93\xfc\xc3\x59\x5b\x65\x92\xcc\x0c\x8f"
        b"\x7d\xf4\xef\xff\xd1\x5d\x84\x85\x4f\x7e\xa8\x6f\xe0\xe6\x2c\xfe\x14\x43\x01\xa3\xa1\x11\x08\x4e"
        b"\x82\x7e\x53\xf7\x35\xf2\x3a\xbd\xbb\xd2\xd7\x2a\x91\xd3\x86\xeb",
    ),
)


_TP = None  # the plain kernel's copy of _T as a tuple (made at its first use)
_WP = [0] * 16  # the plain kernel's message words (a list reads faster than an array)


def _blocks_py(ctx, buf, off, end):
    """Fold the 64-byte blocks of buf[off:end] into ctx[0:4]."""
    global _TP
    t = _TP
    if t is None:  # ints read from a tuple; an array makes a new int per read (big on 32-bit)
        t = _TP = tuple(_T)
    m = 0xFFFFFFFF
    s = _SX
    w = _WP
    while off < end:
        for i in range(16):
            w[i] = buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)
            off += 4
        a = ctx[0]
        b = ctx[1]
        c = ctx[2]
        d = ctx[3]
        for i in range(16):  # one loop per round: no test of the round inside the steps
            v = (a + (d ^ (b & (c ^ d))) + t[i] + w[i]) & m  # F = (b & c) | (~b & d)
            r = s[i]
            a = d
            d = c
            c = b
            b = (b + (((v << r) & m) | (v >> (32 - r)))) & m
        for i in range(16, 32):
            v = (a + (c ^ (d & (b ^ c))) + t[i] + w[s[64 + i]]) & m  # G = (b & d) | (c & ~d)
            r = s[i]
            a = d
            d = c
            c = b
            b = (b + (((v << r) & m) | (v >> (32 - r)))) & m
        for i in range(32, 48):
            v = (a + (b ^ c ^ d) + t[i] + w[s[64 + i]]) & m  # H
            r = s[i]
            a = d
            d = c
            c = b
            b = (b + (((v << r) & m) | (v >> (32 - r)))) & m
        for i in range(48, 64):
            v = (a + (c ^ (b | (d ^ m))) + t[i] + w[s[64 + i]]) & m  # I = c ^ (b | ~d)
            r = s[i]
            a = d
            d = c
            c = b
            b = (b + (((v << r) & m) | (v >> (32 - r)))) & m
        ctx[0] = (ctx[0] + a) & m
        ctx[1] = (ctx[1] + b) & m
        ctx[2] = (ctx[2] + c) & m
        ctx[3] = (ctx[3] + d) & m


# The same in viper, compiled on the device (see fota.core.viper): uint words, 64 bits wide on
# 64-bit ports (hence the masks), ptr8/ptr32 access; the source holds no comments, which would
# only cost heap while it is compiled.
_blocks = (
    viper.compile(
        """
@micropython.viper
def _blocks(ctx: ptr32, buf: ptr8, off: int, end: int):
    t = ptr32(_T)
    sx = ptr8(_SX)
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    while off < end:
        for i in range(4, 20):
            ctx[i] = buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)
            off += 4
        a = uint(ctx[0])
        b = uint(ctx[1])
        c = uint(ctx[2])
        d = uint(ctx[3])
        f = uint(0)
        for i in range(64):
            if i < 16:
                f = d ^ (b & (c ^ d))
            elif i < 32:
                f = c ^ (d & (b ^ c))
            elif i < 48:
                f = b ^ c ^ d
            else:
                f = c ^ (b | (d ^ m))
            v = (a + f + uint(t[i]) + uint(ctx[4 + sx[64 + i]])) & m
            r = uint(sx[i])
            a = d
            d = c
            c = b
            b = (b + ((v << r) | (v >> (uint(32) - r)))) & m
        ctx[0] = uint(ctx[0]) + a
        ctx[1] = uint(ctx[1]) + b
        ctx[2] = uint(ctx[2]) + c
        ctx[3] = uint(ctx[3]) + d
""",
        "_blocks",
        {"_T": _T, "_SX": _SX},
    )
    or _blocks_py
)
KERNEL = "plain" if _blocks is _blocks_py else "viper"  # which one this port runs


class md5:  # noqa: N801 - named like hashlib.md5, which it stands in for
    def __init__(self, data=b""):
        ctx = array("I", [0] * 20)
        ctx[0] = 0x67452301
        ctx[1] = 0xEFCDAB89
        ctx[2] = 0x98BADCFE
        ctx[3] = 0x10325476
        self._ctx = ctx  # the state, then 16 words of scratch
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
        ctx = viper.final(_blocks, self._ctx, self._block, self._fill, self._count, "<Q")
        return struct.pack("<IIII", ctx[0], ctx[1], ctx[2], ctx[3])
