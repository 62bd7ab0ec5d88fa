# MD5 (RFC 1321) in plain Python, for ports whose hashlib has no md5 (most builds without TLS).
#
# Same interface as hashlib.md5: md5(data=b""), update(buf) with bytes, bytearray or memoryview,
# digest() -> 16 bytes. digest() does not finalise the object, so it may be called again and
# update() may go on afterwards (hashlib's own objects are stricter).
#
# Correct on every port: every word is masked to 32 bits and nothing relies on the width of a
# machine int or on `~` (which gives negative ints). On 32-bit ports ints above 2**30 are big ints
# and allocate; that is slow but correct, and the RFC-conformant result matters more. The 64-byte
# block buffer and the 16 message words are allocated once per object.

import struct

# T[i] = floor(abs(sin(i + 1)) * 2**32), written out: single-precision float ports get it wrong.
_T = (
    0xD76AA478, 0xE8C7B756, 0x242070DB, 0xC1BDCEEE, 0xF57C0FAF, 0x4787C62A, 0xA8304613, 0xFD469501,
    0x698098D8, 0x8B44F7AF, 0xFFFF5BB1, 0x895CD7BE, 0x6B901122, 0xFD987193, 0xA679438E, 0x49B40821,
    0xF61E2562, 0xC040B340, 0x265E5A51, 0xE9B6C7AA, 0xD62F105D, 0x02441453, 0xD8A1E681, 0xE7D3FBC8,
    0x21E1CDE6, 0xC33707D6, 0xF4D50D87, 0x455A14ED, 0xA9E3E905, 0xFCEFA3F8, 0x676F02D9, 0x8D2A4C8A,
    0xFFFA3942, 0x8771F681, 0x6D9D6122, 0xFDE5380C, 0xA4BEEA44, 0x4BDECFA9, 0xF6BB4B60, 0xBEBFBC70,
    0x289B7EC6, 0xEAA127FA, 0xD4EF3085, 0x04881D05, 0xD9D4D039, 0xE6DB99E5, 0x1FA27CF8, 0xC4AC5665,
    0xF4292244, 0x432AFF97, 0xAB9423A7, 0xFC93A039, 0x655B59C3, 0x8F0CCC92, 0xFFEFF47D, 0x85845DD1,
    0x6FA87E4F, 0xFE2CE6E0, 0xA3014314, 0x4E0811A1, 0xF7537E82, 0xBD3AF235, 0x2AD7D2BB, 0xEB86D391,
)  # fmt: skip

# Rotation of each step, and which message word it adds (rounds 1-4 of RFC 1321 section 3.4).
_S = bytes((7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4)
_X = bytes(
    [i for i in range(16)]
    + [(5 * i + 1) & 15 for i in range(16)]
    + [(3 * i + 5) & 15 for i in range(16)]
    + [(7 * i) & 15 for i in range(16)]
)
_M = 0xFFFFFFFF  # not const(): on 32-bit ports it is a big int


def _compress(h, w, buf, off):
    """Fold the 64-byte block buf[off:off + 64] into the state list h; w: 16 scratch words."""
    for i in range(16):
        j = off + (i << 2)
        w[i] = buf[j] | (buf[j + 1] << 8) | (buf[j + 2] << 16) | (buf[j + 3] << 24)
    m = _M
    t = _T
    s = _S
    x = _X
    a = h[0]
    b = h[1]
    c = h[2]
    d = h[3]
    for i in range(64):
        if i < 16:
            f = d ^ (b & (c ^ d))  # F = (b & c) | (~b & d)
        elif i < 32:
            f = c ^ (d & (b ^ c))  # G = (b & d) | (c & ~d)
        elif i < 48:
            f = b ^ c ^ d  # H
        else:
            f = c ^ (b | (d ^ m))  # I = c ^ (b | ~d)
        v = (a + f + t[i] + w[x[i]]) & m
        r = s[i]
        v = ((v << r) & m) | (v >> (32 - r))
        a = d
        d = c
        c = b
        b = (b + v) & m
    h[0] = (h[0] + a) & m
    h[1] = (h[1] + b) & m
    h[2] = (h[2] + c) & m
    h[3] = (h[3] + d) & m


class md5:  # noqa: N801 - named like hashlib.md5, which it stands in for
    def __init__(self, data=b""):
        self._h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
        self._w = [0] * 16
        self._block = bytearray(64)
        self._fill = 0  # bytes waiting in _block
        self._count = 0  # bytes hashed so far
        if data:
            self.update(data)

    def update(self, data):
        n = len(data)
        self._count += n
        block = self._block
        fill = self._fill
        pos = 0
        if fill:
            pos = min(64 - fill, n)
            block[fill : fill + pos] = data[:pos]
            fill += pos
            if fill < 64:
                self._fill = fill
                return
            _compress(self._h, self._w, block, 0)
            fill = 0
        while n - pos >= 64:  # whole blocks straight from the caller's buffer
            _compress(self._h, self._w, data, pos)
            pos += 64
        if pos < n:
            fill = n - pos
            block[:fill] = data[pos:]
        self._fill = fill

    def digest(self):
        h = list(self._h)
        fill = self._fill
        tail = bytearray(128)
        tail[:fill] = self._block[:fill]
        tail[fill] = 0x80
        end = 64 if fill < 56 else 128
        bits = self._count << 3
        for i in range(8):  # the message length in bits, modulo 2**64, little-endian
            tail[end - 8 + i] = (bits >> (i << 3)) & 0xFF
        _compress(h, self._w, tail, 0)
        if end == 128:
            _compress(h, self._w, tail, 64)
        return struct.pack("<IIII", h[0], h[1], h[2], h[3])
