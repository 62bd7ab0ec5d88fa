# What both OneNET OTA APIs (the legacy one, onenet.py, and "fuse", onenet_fuse.py) share: the
# token they sign every request with, and the result codes of their reports. A module of its
# own so that each API loads only this, not the other API's code.
#
# The token (the Authorization header): version=..&res=..&et=..&method=..&sign=.., sign being
# base64(HMAC-<method>(base64-decoded access key, "et\nmethod\nres\nversion")), every value
# URL-encoded. Result codes: 101 downloaded, 201 succeeded; failures 102..107 before the slot
# switch and 202..208 after (a wrong MD5 is 205 either way).

import binascii

from micropython import const

from fota.clouds.base import quote, unix_time
from fota.core import errors, hmac  # every request signs: loaded with the module

_UNKNOWN_DOWNLOAD = const(107)
_UNKNOWN_UPGRADE = const(206)


def token(key, res, et, method="sha1", version="2018-10-31"):
    """The Authorization header value.

    key: the access key as base64 text; res: e.g. "products/123"; et: expiry, Unix seconds."""
    try:
        secret = binascii.a2b_base64(key)
    except ValueError:
        raise errors.OTAError(errors.CONFIG, "onenet.key is not base64") from None
    text = "%d\n%s\n%s\n%s" % (et, method, res, version)
    sign = binascii.b2a_base64(hmac.digest(method, secret, text)).strip().decode()
    return "version=%s&res=%s&et=%d&method=%s&sign=%s" % (
        version,
        quote(res),
        et,
        method,
        quote(sign),
    )


def code_for(error, stage):
    """The OneNET result code (102..107, 202..208) for an OTAError at a stage."""
    reason = getattr(error, "reason", None)
    before = stage == "download"
    if reason == errors.VERIFY:  # the MD5 (or the image it covers) is wrong
        return 205
    if reason == errors.VERSION:
        return 204
    if reason == errors.NO_MEMORY:
        return 103 if before else 203
    if reason == errors.NO_SPACE:
        return 102 if before else _UNKNOWN_UPGRADE
    if reason == errors.TIMEOUT:
        return 104 if before else _UNKNOWN_UPGRADE
    return _UNKNOWN_DOWNLOAD if before else _UNKNOWN_UPGRADE


class Signer:
    """Makes fresh tokens: et = now + ttl, from the device clock."""

    def __init__(self, cfg, clock, default_res, default_version):
        self.key = cfg["key"]
        self.res = cfg.get("res") or default_res
        self.method = cfg.get("method", "sha1")
        self.version = cfg.get("token_version", default_version)
        self.ttl = cfg.get("token_ttl", 3600)
        self.clock = clock
        if self.method not in ("md5", "sha1", "sha256"):
            raise errors.OTAError(errors.CONFIG, "onenet.method must be md5, sha1 or sha256")

    def header(self):
        et = unix_time(self.clock) + self.ttl
        return {"Authorization": token(self.key, self.res, et, self.method, self.version)}
