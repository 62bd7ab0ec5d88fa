# The digests of a download: MD5 and/or SHA-256, whichever the offer gives, fed chunk by chunk.
#
# Digests(md5=..., sha256=...) validates the offer's hex strings before anything is erased
# (ProtocolError naming the field). update(buf) runs in the per-chunk loop and, with hashlib's
# own objects, allocates nothing. Hash state cannot be saved across a reboot, so a resumed
# download re-hashes the part already in flash with hash_slot() and then goes on with update().
# Ports whose hashlib lacks md5 (every build without TLS) get fota.core.md5, ports without hashlib
# or its sha256 get fota.core.sha256: pure Python, on the viper emitter where the port has one
# (then they allocate nothing either), slow and allocating on 32-bit ports without it.
#
# prefix=N also keeps a SHA-256 of the first bytes fed, in whole updates, up to N bytes: the slot's
# image check uses it (an ESP32 image's appended SHA-256 covers everything before its last 32
# bytes), so that check needs no second pass over the slot.

import binascii

try:
    import hashlib
except ImportError:  # a port built without hashlib: the pure-Python digests stand in
    hashlib = None

from micropython import const

from fota.core.errors import FLASH, PROTOCOL, VERIFY, OTAError

_BLOCK = const(4096)
_HEX = const(b"0123456789abcdef")


def _expected(field, value, digits):
    """The offer's hex digest, lower case and stripped; ProtocolError naming field if malformed."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise OTAError(PROTOCOL, "offer field %s is not a string" % field)
    text = value.strip().lower()
    if len(text) != digits:
        raise OTAError(PROTOCOL, "offer field %s is not %d hex digits: %r" % (field, digits, value))
    for ch in text.encode():  # bytes: iterating the str would intern each character
        if ch not in _HEX:
            raise OTAError(PROTOCOL, "offer field %s is not hexadecimal: %r" % (field, value))
    return text


def _new(name):
    # hashlib's md5 or sha256, or fota.core.md5 / fota.core.sha256 where this port's hashlib
    # lacks it (or there is no hashlib)
    make = getattr(hashlib, name, None) if hashlib is not None else None
    if make is None:
        make = getattr(__import__("fota.core." + name, None, None, (name,)), name)
    return make()


class Digests:
    """Incremental MD5/SHA-256 of an image, checked against the offer's values by verify().

    Either value may be None (not offered); with both None nothing is checked, so the caller
    decides whether an offer without a digest is acceptable.
    """

    def __init__(self, md5=None, sha256=None, prefix=0):
        self.md5 = _expected("md5", md5, 32)
        self.sha256 = _expected("sha256", sha256, 64)
        self._cap = prefix
        self.reset()

    def reset(self):
        """Start over with new hash objects (a resume re-hashes the slot from its start)."""
        self._md5 = _new("md5") if self.md5 is not None else None
        self._sha256 = _new("sha256") if self.sha256 is not None else None
        self._prefix = _new("sha256") if self._cap > 0 else None
        self._computed = None
        self.length = 0  # bytes hashed since the last reset
        self.prefix_len = 0  # bytes in the prefix hash: the first prefix_len bytes fed

    def prefix(self):
        """(SHA-256 object, n): the hash of the first n bytes fed (n <= prefix), or None."""
        if self._prefix is None:
            return None
        return self._prefix, self.prefix_len

    def update(self, buf):
        """Feed buf (bytes, bytearray or memoryview) to every configured hash. Allocates nothing
        with hashlib's objects (the per-chunk loop runs it under heap_lock in the tests)."""
        h = self._md5
        if h is not None:
            h.update(buf)
        h = self._sha256
        if h is not None:
            h.update(buf)
        end = self.length + len(buf)
        h = self._prefix
        if h is not None and end <= self._cap:  # once over the cap, always over: contiguous
            h.update(buf)
            self.prefix_len = end
        self.length = end

    def feeder(self):
        """The cheapest callable that hashes buf as update(buf) does, for the per-chunk loop:
        with one hash and no prefix, that hash's own update (one call per chunk instead of two;
        `length` then counts only what update() fed). Valid until the next reset()."""
        if self._prefix is None:
            if self._sha256 is None and self._md5 is not None:
                return self._md5.update
            if self._md5 is None and self._sha256 is not None:
                return self._sha256.update
        return self.update

    def hexdigests(self):
        """{"md5": hex, "sha256": hex} of what was hashed, for the configured algorithms.

        Finalises the hashes (hashlib objects refuse update() afterwards): call reset() to hash
        again. Repeated calls return the same values.
        """
        if self._computed is None:
            out = {}
            if self._md5 is not None:
                out["md5"] = binascii.hexlify(self._md5.digest()).decode()
            if self._sha256 is not None:
                out["sha256"] = binascii.hexlify(self._sha256.digest()).decode()
            self._computed = out
        return self._computed

    def verify(self):
        """Raise VerifyError naming the algorithm, the expected and the computed value."""
        computed = self.hexdigests()
        for name, expected in (("md5", self.md5), ("sha256", self.sha256)):
            if expected is not None and computed[name] != expected:
                raise OTAError(
                    VERIFY,
                    "%s mismatch: expected %s, computed %s" % (name, expected, computed[name]),
                )


def hash_slot(read, length, digests, scratch):
    """Feed bytes [0, length) of a slot to digests.update(): a Digests, or any object with
    update(buf) such as a hashlib object. read(block, buf) fills buf from byte block * 4096 on:
    a slot's read(), or a partition's readblocks.

    scratch: a caller-owned buffer of at least 4096 bytes; only the short last read slices it.
    Raises OTAError (flash) when a read fails, ValueError when scratch is too small.
    """
    if len(scratch) < _BLOCK:
        raise ValueError("scratch buffer smaller than 4096 bytes")
    mv = memoryview(scratch)
    if len(mv) != _BLOCK:
        mv = mv[:_BLOCK]
    block = 0
    done = 0
    try:
        while length - done >= _BLOCK:
            read(block, mv)
            digests.update(mv)
            block += 1
            done += _BLOCK
        if done < length:
            tail = mv[: length - done]
            read(block, tail)
            digests.update(tail)
    except OSError as exc:
        raise OTAError(FLASH, "reading the slot at offset %d failed: %s" % (done, exc))
