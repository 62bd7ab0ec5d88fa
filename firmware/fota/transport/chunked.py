# Chunked response bodies for fota.transport.http, imported on the first chunked answer:
# downloads come with Content-Length; some cloud APIs answer chunked.
#
# next_chunk() reads, in place in the client's head buffer, the CRLF that ends a chunk, the next
# chunk-size line (extensions ignored) and, after the last chunk, the trailer fields (ignored,
# bounded like header lines). Raises ProtocolError for a malformed line, DownloadError when the
# connection ends; the caller (Response.readinto) translates anything else.

from micropython import const

from fota.core.errors import PROTOCOL, OTAError

_MAX_TRAILERS = const(32)


def next_chunk(client, resp, num):
    """The lines before resp's next chunk: True (resp.left = its size) or False at the end.

    Reads through the client's interface for body decoders (buf, line(), line_end, finish());
    num: the client module's in-place number parser (passed in: no import back into it)."""
    buf = client.buf
    if resp.chunks:
        start = client.line()
        if start != client.line_end:
            raise OTAError(PROTOCOL, "no CRLF after a chunk")
    resp.chunks += 1
    start = client.line()
    end = client.line_end
    i = buf.find(b";", start, end)
    if i >= 0:
        end = i
    while end > start and buf[end - 1] in (32, 9):
        end -= 1
    size = num(buf, start, end, 16)
    if size < 0:
        raise OTAError(PROTOCOL, "bad chunk size")
    if size:
        resp.left = size
        return True
    for _ in range(_MAX_TRAILERS + 1):  # trailer fields, ignored
        start = client.line()
        if start == client.line_end:
            client.finish(resp)
            return False
    raise OTAError(PROTOCOL, "more than %d trailer lines" % _MAX_TRAILERS)
