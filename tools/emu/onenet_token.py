# tools/emu/onenet_token.py: OneNET's Authorization token, made and checked, as its "token 算法"
# page says (open.iot.10086.cn/doc/multiprotocol/book/manual/auth/token.html).
#
#   Authorization: version={v}&res={urlenc(res)}&et={et}&method={m}&sign={urlenc(sign)}
#   sign = base64(HMAC_m(base64decode(key), et + "\n" + method + "\n" + res + "\n" + version))
#
# Both OneNET APIs use it. Values are URL-decoded before use; legacy doc examples send `res` and
# `sign` un-encoded, which decodes to the same text (unquote leaves "/", "+" and "=" alone).

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote, unquote

METHODS = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}
_FIELDS = ("version", "res", "et", "method", "sign")


class TokenError(Exception):
    """The token is malformed, signed with the wrong key, expired or not for this resource."""


def sign(key, res, et, method="sha1", version="2018-10-31"):
    """The base64 signature; key is the access key as base64 text."""
    try:
        secret = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise TokenError("the access key is not base64") from None
    text = "%s\n%s\n%s\n%s" % (et, method, res, version)
    digest = hmac.new(secret, text.encode(), METHODS[method]).digest()
    return base64.b64encode(digest).decode()


def make(key, res, et, method="sha1", version="2018-10-31"):
    """A complete Authorization header value (for tests and scripts)."""
    signature = sign(key, res, et, method, version)
    return "version=%s&res=%s&et=%d&method=%s&sign=%s" % (
        version,
        quote(res, safe=""),
        et,
        method,
        quote(signature, safe=""),
    )


def parse(header):
    """-> {"version", "res", "et" (int), "method", "sign"}; TokenError if malformed."""
    if not header:
        raise TokenError("no Authorization header")
    fields = {}
    for part in header.strip().split("&"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in _FIELDS:
            raise TokenError("unexpected token part %r" % part[:40])
        if name in fields:
            raise TokenError("token field %s given twice" % name)
        fields[name] = unquote(value.strip())
    missing = [n for n in _FIELDS if n not in fields]
    if missing:
        raise TokenError("token without %s" % ", ".join(missing))
    if fields["method"] not in METHODS:
        raise TokenError("token method must be md5, sha1 or sha256")
    if not fields["et"].isascii() or not fields["et"].isdigit():
        raise TokenError("token et is not a Unix time")
    fields["et"] = int(fields["et"])
    return fields


def verify(header, keys, now, versions):
    """Check a token against {res: base64 key}; -> the res it signs. TokenError otherwise."""
    token = parse(header)
    if token["version"] not in versions:
        raise TokenError("token version %s not accepted here" % token["version"])
    key = keys.get(token["res"])
    if key is None:
        raise TokenError("token res %s has no access here" % token["res"])
    expected = sign(key, token["res"], token["et"], token["method"], token["version"])
    if not hmac.compare_digest(expected.encode(), token["sign"].encode()):
        raise TokenError("token signature mismatch")
    if token["et"] < now:  # the token page: rejected once et < now
        raise TokenError("token expired (et %d < now %d)" % (token["et"], now))
    return token["res"]
