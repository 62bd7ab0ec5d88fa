# fota.transport.http: the transport layer, a small HTTP/1.1 client over socket (+ ssl).
#
# One Client holds one connection, kept alive to the last (scheme, host, port), and one Response
# that every request reuses: a response is valid until the client's next request. Bodies are read
# into the caller's buffer (Response.readinto(buf) -> n, 0 at the end), Content-Length and chunked.
#
# Memory (a board's heap is tens of KB): this module holds only what every request runs (request
# head, response head, Content-Length bodies, keep-alive); rarer code lives in modules imported on
# first use: chunked (chunked bodies), redirect (redirects), tls (the TLS context), body
# (Response.body() and json()). The head is parsed in place in one preallocated 512-byte
# buffer, which also bounds a header line (512 bytes with its CRLF) and the count (32). Only the
# headers the agent needs are kept; no dict of headers. Requests are written into the same
# buffer (a Range's numbers as a few bytes of digits), and the split of the last URL is
# cached, so a keep-alive get_range() costs a few hundred bytes (measured in
# host_tests/test_http.py). A Content-Length body is read straight from the socket into the
# caller's buffer and allocates nothing (proved there under micropython.heap_lock()); direct()
# hands the download engine the socket's own readinto for its steady state.
#
# MicroPython sockets: readinto(buf, n) on a blocking socket waits for all n bytes, so heads and
# bodies are read non-blocking with select.poll for the timeout; only the engine's fast path
# (direct()) reads blocking, whole chunks, with settimeout. CPython's recv_into returns what
# arrived and needs no such switching.
#
# Deadlines: a socket timeout bounds each wait, not a request, so a server that sends one byte
# at a time could hold a request forever. Every request therefore also has a deadline (`deadline`
# seconds from its start, redirects included): each wait is cut to what is left of it and the
# request fails with reason `timeout` once it has passed. The direct() reader is one blocking
# call per chunk, which no timeout of ours can cut short: the engine asks late() between chunks,
# so that path can overrun by the time one chunk takes. At most _MAX_INTERIM 1xx answers may
# come before the real one.
#
# An application may replace the socket (a modem that offloads sockets and TLS, as on an
# nRF9160): see fota.transport.hook, loaded only then.
#
# Errors (fota.core.errors), translated from OSError/ValueError/MemoryError here at the edge:
# DownloadError (network, TLS verification, early end, too many redirects), TimeoutError,
# ProtocolError (malformed answer), ConfigError (https without CA, http without allow_http, bad
# URL or header), NoMemoryError. HTTP statuses are the caller's to judge; redirects are followed.

import errno
import select
import socket
import time  # ticks_ms, ticks_add, ticks_diff: CPython gets them from the micropython stand-in

from micropython import const

from fota.core.errors import CONFIG, DOWNLOAD, NO_MEMORY, PROTOCOL, TIMEOUT, OTAError
from fota.transport import url as _url

# for pyright only: sockets differ between ports, their stubs do not (the block compiles away)
_TYPE_CHECKING = const(False)
if _TYPE_CHECKING:
    from typing import Any  # noqa: F401

_BUF = const(512)  # head/line/request buffer: also the longest header line accepted
_MAX_HEADERS = const(32)
_MAX_INTERIM = const(8)  # 1xx answers before the real one
_DONE = const(0)  # body modes
_LENGTH = const(1)
_CHUNKED = const(2)
_EOF = const(3)  # no length: the body ends when the server closes

_REDIRECTS = const((301, 302, 303, 307, 308))


class Response:
    """The answer to one request: status, the few parsed headers, and the body as a stream.

    status, length (Content-Length or None), range_start/range_end/range_total (Content-Range as
    ints, None when absent; "bytes */N" gives only range_total), content_type, location, etag:
    str or None. header(name) gives a header the request named in keep=.
    """

    def __init__(self, client):
        self._client = client
        self._extra = None
        self._reset()

    def _reset(self):
        self.status = 0
        self.length = None
        self.range_start = self.range_end = self.range_total = None
        self.content_type = self.location = self.etag = None
        self._mode = _DONE
        self.left = 0  # body bytes left (Content-Length), or left in this chunk
        self._got = 0
        self.chunks = 0
        self._close = False  # Connection: close (or HTTP/1.0 without keep-alive)
        if self._extra:
            self._extra.clear()

    def header(self, name):
        return self._extra.get(name.lower()) if self._extra else None

    def done(self):
        """True when the body was read to its end (or abandoned)."""
        return self._mode == _DONE

    def readinto(self, buf):
        """Read body bytes into buf; -> count (may be short), 0 at the end of the body.

        Allocates nothing for a Content-Length body once the bytes that came with the head are
        consumed. Raises DownloadError if the connection ends early, TimeoutError, ProtocolError.
        """
        mode = self._mode
        if mode == _DONE:
            return 0
        client = self._client
        want = len(buf)
        try:
            if mode == _CHUNKED and self.left == 0:
                from fota.transport.chunked import next_chunk

                if not next_chunk(client, self, _num):
                    return 0
            if mode != _EOF and self.left < want:
                want = self.left
            pos = client._pos
            if pos < client._end:  # bytes that came with the head: one copy
                n = client._end - pos
                if n > want:
                    n = want
                buf[0:n] = client._mv[pos : pos + n]
                client._pos = pos + n
            else:
                n = client._recv(buf, want)
        except Exception as exc:
            raise client._fail(exc, "body from") from None
        if n == 0:
            if mode == _EOF:
                client.finish(self)
                return 0
            client._close()
            raise OTAError(
                DOWNLOAD,
                "connection closed after %d body bytes (%d more expected)" % (self._got, self.left),
            )
        self._got += n
        if mode != _EOF:
            self.left -= n
            if mode == _LENGTH and self.left == 0:
                client.finish(self)
        return n

    # -- the download engine's fast path (fota.core.download): no Python call per chunk

    def direct(self):
        """The socket's own readinto(buf) -> n, when the rest of a Content-Length body can be
        read with it (no bytes left over from the head, a MicroPython socket, whose blocking
        readinto fills buf unless the connection ends); else None, and readinto() is the way.

        The caller never asks for more than the body bytes left, reports what it read with
        taken(n) before any other call on this response, and hands an OSError it raises to
        failed(). Allocates a bound method: call once per response, not per chunk.
        """
        client = self._client
        if self._mode != _LENGTH or client._pos < client._end or client._poll is None:
            return None
        client._blocking(True)
        return client._sock.readinto

    def late(self):
        """True once the request's deadline has passed: the engine asks between direct() reads
        (it allocates nothing)."""
        return time.ticks_diff(self._client._due, time.ticks_ms()) <= 0

    def taken(self, n):
        """Account for n body bytes read through direct(); keeps the connection at the end."""
        if n > 0 and self._mode == _LENGTH:
            self._got += n
            self.left -= n
            if self.left <= 0:
                self._client.finish(self)

    def failed(self, exc):
        """The fota error for exc, raised by direct()'s reader; closes the connection."""
        return self._client._fail(exc, "body from")

    # -- small bodies (fota.transport.body, imported on first use)

    def body(self, limit=4096):
        """The whole body as bytes; ProtocolError if it is longer than limit."""
        from fota.transport.body import body

        return body(self, limit)

    def json(self, limit=4096):
        """The body parsed as JSON; ProtocolError if it is not JSON or longer than limit."""
        from fota.transport.body import json

        return json(self, limit)

    def close(self):
        """Abandon the rest of the body (the connection closes unless the body was read)."""
        if self._mode != _DONE:
            self._mode = _DONE
            self._client._close()


class Client:
    """HTTP/1.1 client with one kept-alive connection.

    ca: DER bytes of the CA for https (required for https, always verified with the host name);
    allow_http: permit plain http:// (also as a redirect target); timeouts in seconds: connect
    and read bound each wait, deadline a whole request (redirects included); max_redirects:
    301/302/303/307/308 followed, then DownloadError. `connects` counts the connections opened,
    `requests` the requests sent.
    """

    def __init__(
        self,
        ca=None,
        allow_http=False,
        connect_timeout=5.0,
        read_timeout=10.0,
        max_redirects=3,
        deadline=60,
    ):
        self.ca = ca
        self.allow_http = allow_http
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self._due = 0  # ticks_ms() by which the current request must be done
        self.max_redirects = max_redirects
        self.connects = 0
        self.requests = 0
        self._ctx = None  # the TLS context, made on the first https connection (fota.transport.tls)
        self.buf = bytearray(_BUF)
        self._mv = memoryview(self.buf)
        self._wait_ms = 0
        self._pos = self._end = self.line_end = 0  # buffered bytes [pos, end); end of the last line
        self._sock = None  # type: Any  # the socket, or the TLS socket around it
        self._raw = None  # type: Any  # where timeouts are set (MicroPython: the plain socket)
        self._poll = None  # type: Any  # MicroPython: poll for non-blocking head reads
        self._recv_into = None  # type: Any  # CPython: sock.recv_into
        self._write = None  # type: Any  # the socket's write-it-all: write(), CPython's sendall()
        self._origin = None  # type: Any  # (tls, host, port) of the open connection
        self._idle = False  # the open connection may carry the next request
        self._url = None
        self._parts = None  # type: Any  # cached split of self._url
        self.response = Response(self)

    # -- public API

    def request(self, method, url, headers=None, body=None, json=None, keep=None):
        """Send a request, follow redirects; -> the client's Response (valid until the next).

        headers: dict of str; body: bytes; json: an object sent as JSON; keep: names of extra
        response headers to keep for Response.header().
        """
        return self._request(method, url, headers, body, json, keep, -1, -1, False)

    def get_range(self, url, start, end, bare=False, headers=None, keep=None):
        """GET with `Range: bytes=start-end` (end inclusive, None: to the end of the file), or
        OneNET's bare `Range: start-end`. The caller judges 200/206/416 and the Content-Range."""
        last = -1 if end is None else end
        if start < 0 or (end is not None and end < start):
            raise OTAError(CONFIG, "bad byte range %r-%r" % (start, end))
        return self._request("GET", url, headers, None, None, keep, start, last, bare)

    def close(self):
        self._close()

    # -- requests and redirects

    def _request(self, method, url, headers, body, obj, keep, first, last, bare):
        ctype = obj is not None
        if ctype:
            import json

            body = json.dumps(obj).encode()
        hops = 0
        self._due = time.ticks_add(time.ticks_ms(), int(self.deadline * 1000))
        try:
            while True:
                resp = self._exchange(method, url, headers, body, ctype, keep, first, last, bare)
                if resp.status not in _REDIRECTS or resp.location is None:
                    return resp
                if hops == self.max_redirects:
                    break
                hops += 1
                from fota.transport.url import follow

                method, url, headers, body, ctype = follow(resp, method, url, headers, body, ctype)
        except MemoryError:
            self._close()
            raise OTAError(NO_MEMORY, "out of memory in an HTTP request") from None
        self.response.close()
        raise OTAError(
            DOWNLOAD, "too many redirects (more than %d)" % self.max_redirects, retryable=False
        )

    def _exchange(self, method, url, headers, body, ctype, keep, first, last, bare):
        if url is not self._url and url != self._url:
            tls, host, port, target = _url.split(url)
            name = "[%s]" % host if ":" in host else host
            if port != (443 if tls else 80):
                name = "%s:%d" % (name, port)
            self._parts = (tls, host, port, name.encode(), target.encode())
            self._url = url
        tls, host, port, name, target = self._parts
        if tls and self.ca is None:
            raise OTAError(
                CONFIG, "https needs a CA certificate (none configured): " + _url.shown(url)
            )
        if not tls and not self.allow_http:
            raise OTAError(
                CONFIG, "plain http is not allowed (allow_http is off): " + _url.shown(url)
            )
        resp = self.response
        resp._reset()
        origin = self._origin
        reuse = self._idle and origin[0] == tls and origin[2] == port and origin[1] == host
        if not reuse:
            self._connect(tls, host, port)
        self._idle = False
        while True:
            what = "request to"
            try:
                self._send(method, name, target, headers, body, ctype, first, last, bare)
                what = "answer from"
                got = self._fill()
            except OSError as exc:
                if not reuse or _is_timeout(exc):
                    raise self._fail(exc, what) from None
                got = 0  # a reset on a kept-alive connection: as if closed
            except Exception as exc:
                raise self._fail(exc, what) from None
            if got:
                break
            if not reuse:
                self._close()
                raise OTAError(
                    DOWNLOAD, "%s:%d closed the connection without an answer" % (host, port)
                )
            reuse = False  # a kept-alive connection the server had closed: one new attempt
            self._connect(tls, host, port)
        self.requests += 1
        try:
            self._head(resp, method, keep)
        except Exception as exc:
            raise self._fail(exc, "response head from") from None
        return resp

    # -- the connection

    def _connect(self, tls, host, port):
        self._close()
        import fota

        if fota.connect:  # the application's transport (fota.app.agent.transport)
            from fota.transport.hook import attach

            return attach(self, host, port, tls)
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:
            raise OTAError(DOWNLOAD, "cannot resolve %s: %s" % (host, exc)) from None
        raw = None
        for info in infos:
            raw = socket.socket(info[0], socket.SOCK_STREAM)
            try:
                raw.settimeout(self._cut(self.connect_timeout))
                raw.connect(info[-1])
                break
            except OSError as exc:
                raw.close()
                raw = None
                if _is_timeout(exc) or info is infos[-1]:
                    raise self._fail(exc, "connect to %s:%d" % (host, port)) from None
        if raw is None:
            raise OTAError(DOWNLOAD, "no address for %s" % host)
        self.connects += 1
        sock = raw
        if tls:
            from fota.transport.tls import wrap

            sock = wrap(self, raw, host, port)
        self._sock = sock
        self._raw = raw
        if hasattr(sock, "recv_into") and hasattr(sock, "settimeout"):  # CPython
            self._raw = sock  # CPython's ssl replaced the socket object
            self._recv_into = getattr(sock, "recv_into")  # noqa: B009
            self._write = getattr(sock, "sendall")  # noqa: B009
        else:  # MicroPython: readinto(buf, n), and timeouts on the plain socket
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
            # write() is the stream method every port's socket has (some lack sendall); on a
            # blocking socket with a timeout it returns only when all was written
            self._write = sock.write
        self._raw.settimeout(self._cut(self.read_timeout))
        self._wait_ms = int(self.read_timeout * 1000)
        self._origin = (tls, host, port)
        self._pos = self._end = 0

    def _close(self):
        sock = self._sock
        self._sock = self._raw = self._poll = self._recv_into = self._write = None
        self._origin = None
        self._idle = False
        self.response._mode = _DONE
        self._pos = self._end = 0
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _fail(self, exc, what):
        # the fota error for exc, after closing the connection; OTAErrors pass through
        origin = self._origin
        if origin is not None:
            what = "%s %s:%d" % (what, origin[1], origin[2])
        self._close()
        if isinstance(exc, OTAError):
            return exc
        if isinstance(exc, MemoryError):
            return OTAError(NO_MEMORY, "out of memory: " + what)
        if isinstance(exc, OSError) and _is_timeout(exc):
            if time.ticks_diff(self._due, time.ticks_ms()) <= 0:
                what += " (over the %s s deadline)" % self.deadline
            return OTAError(TIMEOUT, "timed out: " + what)
        if isinstance(exc, OSError):  # named as the port names it: ECONNREFUSED, EHOSTUNREACH ...
            code = exc.args[0] if exc.args else None
            name = errno.errorcode.get(abs(code)) if isinstance(code, int) else None
            return OTAError(DOWNLOAD, "network error: %s: %s" % (what, name or repr(exc)))
        return exc

    def _left(self):
        # ms left before the request's deadline; OSError (ETIMEDOUT) once it has passed
        left = time.ticks_diff(self._due, time.ticks_ms())
        if left <= 0:
            raise OSError(errno.ETIMEDOUT)
        return left

    def _cut(self, timeout):
        # a socket timeout in seconds, cut to what is left of the deadline (at least 1 ms)
        left = time.ticks_diff(self._due, time.ticks_ms()) / 1000
        return timeout if left > timeout else left if left > 0.001 else 0.001

    def _blocking(self, on):
        # MicroPython only: requests are written and direct() reads blocking (with the
        # timeout), everything else is read non-blocking
        if self._poll is not None:
            if on:
                self._raw.settimeout(self._cut(self.read_timeout))
            else:
                self._raw.setblocking(False)

    def _recv(self, buf, n):
        # up to n bytes from the socket into buf; 0 at EOF; OSError (ETIMEDOUT) on a timeout or
        # past the deadline. Allocates nothing on MicroPython.
        left = self._left()
        recv_into = self._recv_into
        if recv_into is not None:
            self._raw.settimeout(self._cut(self.read_timeout))
            return recv_into(buf, n)
        sock = self._sock
        while True:
            got = sock.readinto(buf, n)
            if got is not None:
                return got
            wait = self._wait_ms
            for _ in self._poll.ipoll(left if left < wait else wait):
                break
            else:
                if left >= wait:
                    raise OSError(errno.ETIMEDOUT)
            left = self._left()

    def _fill(self):
        # more bytes into the buffer after the buffered ones; -> count, 0 at EOF
        pos, end = self._pos, self._end
        if pos:
            if pos < end:
                self._mv[0 : end - pos] = self._mv[pos:end]
            end -= pos
            self._pos, self._end = 0, end
        n = self._recv(self._mv[end:], _BUF - end)
        self._end = end + n
        return n

    # -- the interface of the body decoders loaded on first use (fota.transport.chunked): the
    #    buffer, its lines, and the end of a body

    def line(self):
        # -> start of the next line in the buffer; self.line_end = its end without CR LF
        buf = self.buf
        while True:
            i = buf.find(b"\n", self._pos, self._end)
            if i >= 0:
                break
            if self._pos == 0 and self._end == _BUF:
                raise OTAError(PROTOCOL, "header line longer than %d bytes" % _BUF)
            if self._fill() == 0:
                raise OTAError(DOWNLOAD, "connection closed in the middle of a response head")
        start = self._pos
        self._pos = i + 1
        if i > start and buf[i - 1] == 13:
            i -= 1
        self.line_end = i
        return start

    def finish(self, resp):
        # the body was read to its end: keep the connection for the next request if we may
        resp._mode = _DONE
        if resp._close or self._pos != self._end:
            self._close()
        else:
            self._idle = True

    # -- the request head, written into the buffer

    def _send(self, method, name, target, headers, body, ctype, first, last, bare):
        self._blocking(True)
        self._pos = self._end = 0
        put = self._put
        put(b"GET" if method == "GET" else method.encode())
        put(b" ")
        put(target)
        put(b" HTTP/1.1\r\nHost: ")
        put(name)
        if first >= 0:  # (a few bytes of digits per request: never in the per-chunk loop)
            put(b"\r\nRange: %d-" % first if bare else b"\r\nRange: bytes=%d-" % first)
            if last >= 0:
                put(b"%d" % last)
        if headers:
            for key in headers:
                value = str(headers[key])
                for text in (key, value):
                    if "\n" in text or "\r" in text:
                        raise OTAError(CONFIG, "line break in HTTP header %r" % key)
                put(b"\r\n")
                put(key.encode())
                put(b": ")
                put(value.encode())
        if ctype:
            put(b"\r\nContent-Type: application/json")
        if body is not None or method in ("POST", "PUT"):
            put(b"\r\nContent-Length: %d" % (0 if body is None else len(body)))
        put(b"\r\n\r\n")
        if body:
            put(body)
        self._flush()
        self._blocking(False)

    def _flush(self):
        self._write(self._mv[0 : self._end])
        self._end = 0

    def _put(self, data):
        n = len(data)
        end = self._end
        if end + n > _BUF:
            self._flush()
            end = 0
            if n > _BUF:
                self._write(data)
                return
        self._mv[end : end + n] = data
        self._end = end + n

    # -- the response head, parsed in place

    def _head(self, resp, method, keep):
        buf = self.buf
        names = [(k.lower().encode(), k.lower()) for k in keep] if keep else None
        if names and resp._extra is None:
            resp._extra = {}
        interim = 0
        while True:
            start, end = self.line(), self.line_end
            if (
                end - start < 12
                or not _ieq(buf, start, b"http/1.")
                or not 48 <= buf[start + 7] <= 57
                or buf[start + 8] != 32
                or (end > start + 12 and buf[start + 12] != 32)
            ):
                raise OTAError(PROTOCOL, "malformed status line")
            status = _num(buf, start + 9, start + 12, 10)
            if status < 100:
                raise OTAError(PROTOCOL, "malformed status line")
            resp.status = status
            resp._close = buf[start + 7] == 48  # HTTP/1.0 closes unless it says keep-alive
            count = 0
            chunked = False
            while True:
                start, end = self.line(), self.line_end
                if start == end:
                    break
                count += 1
                if count > _MAX_HEADERS:
                    raise OTAError(PROTOCOL, "more than %d header lines" % _MAX_HEADERS)
                colon = buf.find(b":", start, end)
                if colon <= start or buf[start] in (32, 9):
                    raise OTAError(PROTOCOL, "malformed header line")
                vs = colon + 1
                while vs < end and buf[vs] in (32, 9):
                    vs += 1
                while end > vs and buf[end - 1] in (32, 9):
                    end -= 1
                chunked = self._field(resp, buf, start, colon, vs, end, names) or chunked
            if status >= 200:
                break
            if status == 101:
                raise OTAError(PROTOCOL, "unexpected 101 Switching Protocols")
            interim += 1
            if interim > _MAX_INTERIM:
                raise OTAError(PROTOCOL, "more than %d interim (1xx) answers" % _MAX_INTERIM)
            resp._reset()  # 1xx: an interim answer, the real one follows
        if method == "HEAD" or status in (204, 304):
            resp._mode = _DONE
        elif chunked:
            resp._mode, resp.length = _CHUNKED, None
        elif resp.length is not None:
            resp._mode, resp.left = _LENGTH, resp.length
        else:
            resp._mode, resp._close = _EOF, True
        if resp._mode == _DONE or (resp._mode == _LENGTH and resp.left == 0):
            self.finish(resp)

    def _field(self, resp, buf, start, colon, vs, ve, names):
        # one header field: keeps what the agent needs; -> True for chunked Transfer-Encoding
        n = colon - start
        if n == 14 and _ieq(buf, start, b"content-length"):
            value = _num(buf, vs, ve, 10)
            if value < 0 or (resp.length is not None and resp.length != value):
                raise OTAError(PROTOCOL, "bad Content-Length")
            resp.length = value
        elif n == 13 and _ieq(buf, start, b"content-range"):
            _content_range(resp, buf, vs, ve)
        elif n == 17 and _ieq(buf, start, b"transfer-encoding"):
            if ve - vs != 7 or not _ieq(buf, vs, b"chunked"):
                raise OTAError(PROTOCOL, "unsupported Transfer-Encoding")
            return True
        elif n == 10 and _ieq(buf, start, b"connection"):
            if ve - vs == 10 and _ieq(buf, vs, b"keep-alive"):  # the usual answer, quickly
                resp._close = False
            elif _has(buf, vs, ve, b"close"):
                resp._close = True
            elif _has(buf, vs, ve, b"keep-alive"):
                resp._close = False
        elif n == 8 and _ieq(buf, start, b"location"):
            resp.location = _text(self._mv, vs, ve)
        elif n == 12 and _ieq(buf, start, b"content-type"):
            resp.content_type = _text(self._mv, vs, ve)
        elif n == 4 and _ieq(buf, start, b"etag"):  # the download notices another file by it
            resp.etag = _text(self._mv, vs, ve)
        elif names:
            for raw, key in names:
                if n == len(raw) and _ieq(buf, start, raw):
                    resp._extra[key] = _text(self._mv, vs, ve)
        return False


# -- in-place parsing helpers (no allocation)


def _is_timeout(exc):
    if isinstance(exc, getattr(socket, "timeout", ())):  # CPython's class; none on MicroPython
        return True
    code = exc.args[0] if exc.args else None
    return isinstance(code, int) and (abs(code) == errno.ETIMEDOUT or abs(code) == errno.EAGAIN)


def _ieq(buf, start, name):
    # buf[start:start+len(name)] equals the lowercase name, ignoring ASCII case
    for i in range(len(name)):
        if buf[start + i] | 32 != name[i]:
            return False
    return True


def _has(buf, start, end, token):
    for i in range(start, end - len(token) + 1):
        if _ieq(buf, i, token):
            return True
    return False


def _num(buf, start, end, base):
    # the digits buf[start:end] as an int; -1 if empty, over 15 digits or not digits
    if start >= end or end - start > 15:
        return -1
    value = 0
    for i in range(start, end):
        c = buf[i]
        if 48 <= c <= 57:
            c -= 48
        elif base == 16 and 97 <= c | 32 <= 102:
            c = (c | 32) - 87
        else:
            return -1
        value = value * base + c
    return value


def _text(mv, start, end):
    try:
        return str(mv[start:end], "utf-8")
    except ValueError:
        raise OTAError(PROTOCOL, "header value is not UTF-8") from None


def _content_range(resp, buf, start, end):
    # "bytes A-B/N", "bytes A-B/*" or "bytes */N"; anything else is a ProtocolError
    slash = buf.find(b"/", start, end)
    if end - start < 9 or not _ieq(buf, start, b"bytes ") or slash < 0:
        raise OTAError(PROTOCOL, "malformed Content-Range")
    total = None if slash + 2 == end and buf[slash + 1] == 42 else _num(buf, slash + 1, end, 10)
    first = last = None
    if not (slash == start + 7 and buf[start + 6] == 42):
        dash = buf.find(b"-", start + 6, slash)
        first = _num(buf, start + 6, dash, 10) if dash >= 0 else -1
        last = _num(buf, dash + 1, slash, 10) if dash >= 0 else -1
        if first < 0 or last < first or (total is not None and last >= total):
            raise OTAError(PROTOCOL, "malformed Content-Range")
    elif total is None:
        raise OTAError(PROTOCOL, "malformed Content-Range")
    if total is not None and total < 0:
        raise OTAError(PROTOCOL, "malformed Content-Range")
    resp.range_start, resp.range_end, resp.range_total = first, last, total
