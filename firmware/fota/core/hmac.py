# HMAC (RFC 2104) on hashlib, for the clouds' request signatures.
#
# ESP32 MicroPython ships no `hmac` module, and some ports' hashlib lack md5 or sha256
# (fota.core.md5 and fota.core.sha256 stand in). sha1 has none: where a port lacks it, configure
# the cloud's md5 or sha256 signature.
# Runs a few times per cloud request, never in the download loop; allocates a few small bytes.

import hashlib

from micropython import const

from fota.core.errors import CONFIG, OTAError

_BLOCK = const(64)  # the block size of md5, sha1 and sha256


def _new(name):
    if name == "md5":
        try:
            return hashlib.md5()
        except AttributeError:  # this port's hashlib has no md5
            from fota.core.md5 import md5

            return md5()
    if name == "sha1":
        return hashlib.sha1()
    if name == "sha256":
        try:
            return hashlib.sha256()
        except AttributeError:  # this port's hashlib has no sha256
            from fota.core.sha256 import sha256

            return sha256()
    raise OTAError(CONFIG, "unknown hash %r: use md5, sha1 or sha256" % (name,))


def digest(name, key, msg):
    """HMAC of msg under key with hash `name` ("md5", "sha1", "sha256") -> bytes."""
    if isinstance(key, str):
        key = key.encode()
    if isinstance(msg, str):
        msg = msg.encode()
    if len(key) > _BLOCK:
        h = _new(name)
        h.update(key)
        key = h.digest()
    key = key + b"\x00" * (_BLOCK - len(key))
    inner = _new(name)
    inner.update(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = _new(name)
    outer.update(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def hexdigest(name, key, msg):
    import binascii

    return binascii.hexlify(digest(name, key, msg)).decode()
