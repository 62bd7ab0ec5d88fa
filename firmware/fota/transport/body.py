# Small whole bodies for fota.transport.http (cloud API answers, redirect bodies), imported on
# first use: the download streams its body with readinto() and never needs this.
#
# Both read through Response.readinto and allocate the result; a body over `limit` bytes is an
# OTAError (protocol) and the connection is closed, so no server can exhaust RAM. A body with a
# Content-Length is read into one buffer of exactly its size: a buffer that grows as bytes come
# needs ever larger free runs of heap, which a fragmented heap on a board may not have.

from fota.core.errors import PROTOCOL, OTAError


def _over(resp, limit):
    resp.close()
    return OTAError(PROTOCOL, "response body is over %d bytes" % limit)


def _read(resp, limit):
    # -> a bytearray holding the whole body
    n = resp.length
    if n is not None:
        if n > limit:
            raise _over(resp, limit)
        out = bytearray(n)
        mv = memoryview(out)
        got = 0
        while got < n:
            k = resp.readinto(mv[got:])
            if k == 0:
                break  # the connection ended early: readinto() has raised for that already
            got += k
        return out
    out = bytearray()
    scratch = bytearray(256)
    while True:
        k = resp.readinto(scratch)
        if k == 0:
            return out
        if len(out) + k > limit:
            raise _over(resp, limit)
        out.extend(scratch if k == len(scratch) else scratch[:k])


def body(resp, limit):
    """The whole body of resp as bytes; OTAError (protocol) if it is longer than limit."""
    return bytes(_read(resp, limit))


def json(resp, limit):
    """The body of resp parsed as JSON; OTAError (protocol) if it is not JSON or over limit."""
    from json import loads

    data = _read(resp, limit)
    try:
        # a bytearray, not a copy as bytes: MicroPython's and CPython's json read any buffer
        return loads(data)  # pyright: ignore[reportArgumentType]
    except ValueError:
        raise OTAError(PROTOCOL, "the response is not valid JSON") from None
