# An in-memory stand-in for fota.transport.http's client, serving one file with HTTP Range
# semantics.
#
# For the download engine's tests on both runtimes: deterministic, no sockets, and every
# misbehaviour a real server shows on demand. The same engine also runs against nginx and the
# fault-injecting server through the real client (test_download_http.py). get_range() and the
# response have the attributes the engine reads from fota.transport.http: status, content_length,
# range_start, range_end, range_total, readinto(buf), close().

_DROP = 1
_PARTIAL = 2


class FakeResponse:
    def __init__(self, server, status, start, end, total, body_len):
        self.status = status
        self.length = body_len
        self.range_start = start
        self.range_end = end
        self.range_total = total
        self._server = server
        self._pos = start if start is not None else 0
        self._left = body_len
        self.closed = False
        self._dead = False

    def readinto(self, buf):
        srv = self._server
        if self._dead:
            return 0
        n = min(len(buf), self._left)
        if srv.short_reads and n > 1:
            n = n // 2 + 1  # a server that trickles: reads return less than asked
        if srv.drop_at is not None:
            if srv.sent >= srv.drop_at:
                srv.drop_at = None  # the fault happens once
                self._dead = True
                if srv.drop_mode == _DROP:
                    return 0  # the peer closed the connection
                raise OSError(110, "ETIMEDOUT")
            n = min(n, srv.drop_at - srv.sent)
        data = srv.data
        for i in range(n):
            buf[i] = data[self._pos + i]
        self._pos += n
        self._left -= n
        srv.sent += n
        return n

    def body(self, limit=4096):
        """The rest of the body as bytes (the size probe reads its one byte with it)."""
        out = bytearray()
        buf = bytearray(min(max(self._left, 1), limit))
        while True:
            n = self.readinto(buf)
            if n == 0:
                return bytes(out)
            out.extend(buf[:n])

    def close(self):
        self.closed = True


class FakeClient:
    """mode: "range" (206), "ignore" (200 with the whole file), "wrong-range" (206 for other
    bytes), "status" (answer `status_code`). drop_after(n): the connection dies once, after n
    bytes in total (closed, or a timeout with timeout=True)."""

    def __init__(self, data, mode="range", total=None, status_code=500):
        self.data = data
        self.mode = mode
        self.total = len(data) if total is None else total
        self.status_code = status_code
        self.requests = []  # (start, end, bare)
        self.sent = 0
        self.short_reads = False
        self.drop_at = None
        self.drop_mode = _DROP
        self.last_headers = None

    def drop_after(self, n, timeout=False):
        self.drop_at = n
        self.drop_mode = _PARTIAL if timeout else _DROP

    def get_range(self, url, start, end, bare=False, headers=None, keep=None):
        self.requests.append((start, end, bare))
        self.last_headers = headers
        size = len(self.data)
        if self.mode == "status":
            return FakeResponse(self, self.status_code, None, None, None, 0)
        if self.mode == "ignore":
            return FakeResponse(self, 200, None, None, None, size)
        if start >= size:
            return FakeResponse(self, 416, None, None, None, 0)
        end = min(end, size - 1)  # as nginx clamps
        if self.mode == "wrong-range":
            start += 1
        return FakeResponse(self, 206, start, end, self.total, end - start + 1)
