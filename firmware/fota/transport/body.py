# Small whole bodies for fota.transport.http (cloud API answers, redirect bodies), imported on
# first use:
# the download streams its body with readinto() and never needs this (style.md rule 7).
#
# Both read through Response.readinto and allocate the result; a body over `limit` bytes is a
# ProtocolError (and the connection is closed), so no server can exhaust RAM.

from fota.core.errors import PROTOCOL, OTAError


def body(resp, limit):
    """The whole body of resp as bytes; ProtocolError if it is longer than limit."""
    if resp.length is not None and resp.length > limit:
        resp.close()
        raise OTAError(PROTOCOL, "response body of %d bytes is over %d" % (resp.length, limit))
    out = bytearray()
    scratch = bytearray(256)
    while True:
        n = resp.readinto(scratch)
        if n == 0:
            return bytes(out)
        if len(out) + n > limit:
            resp.close()
            raise OTAError(PROTOCOL, "response body is over %d bytes" % limit)
        out.extend(scratch if n == len(scratch) else scratch[:n])


def json(resp, limit):
    """The body of resp parsed as JSON; ProtocolError if it is not JSON or over limit."""
    from json import loads

    data = body(resp, limit)
    try:
        return loads(data)
    except ValueError:
        raise OTAError(PROTOCOL, "the response is not valid JSON") from None
