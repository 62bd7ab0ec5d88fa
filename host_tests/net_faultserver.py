"""The fault-injecting HTTP server of the network tests (netfixtures.py starts two).

Fault-injecting server (FOTA_TEST_HTTP, FOTA_TEST_HTTPS)
--------------------------------------------------------
Two instances (plain and TLS), each with its own counters. HTTP/1.1 with keep-alive (until the
client closes or sends `Connection: close`). Any path may be prefixed with `/tag/TAG` (e.g.
`/tag/t42/small.bin`): requests and connections are then also counted under TAG (a connection
counts once per tag, at its first request with that tag), so a test can prove connection reuse
without being disturbed by other tests' traffic.

  /NAME                  the file, 200; `Range: bytes=A-B`, `bytes=A-` and OneNET's bare `A-B`
                         give 206 + Content-Range (end clamped), 416 + `bytes */SIZE` if A >= SIZE
  /chunked/NAME          the file in chunked encoding (chunk sizes cycle 1, 7, 100, 1000, 4096)
  /nolength/NAME         the file without Content-Length, delimited by closing the connection
  /redirect/N/REST       302 with a relative Location `/redirect/N-1/REST` (keeping a /tag
                         prefix); N = 0 serves `/REST`
  /redirect-CODE/N/REST  the same with status CODE (301, 302, 303, 307 or 308)
  /answer/HEX/REST       the answer that HEX (hexlified JSON: {"status", "body"}, {"big": N}: a
                         body of N bytes, or {"status", "location"}: a redirect) names, whatever
                         REST is; REST ending in /auth gets an Aliyun token answer
  /record/TAG/REST       200 {}; the request (method, target, headers, body) is kept under TAG
  /recorded/TAG          JSON: the requests /record/TAG/... received
  /redirect-abs/N/REST   302 with an absolute Location (this server's own base URL)
  /redirect-abs-307/N/REST  307 with an absolute Location
  /close/NAME            the file with `Connection: close`, then closes
  /hangup/NAME           the file as a normal keep-alive answer, then closes the connection
                         without notice (an idle keep-alive connection the server dropped)
  /drop/K/NAME           headers with the full Content-Length, K body bytes, then closes
  /stall/K/NAME          headers with the full Content-Length, K body bytes, then sends nothing
                         more but keeps the socket open until the client closes it
  /drip/MS/K/NAME        headers with the full Content-Length and K body bytes at once, then
                         the rest one byte every MS milliseconds (each wait far below any read
                         timeout: only a deadline on the whole request ends it)
  /drip-head/MS/NAME     the response head one byte every MS milliseconds, then the file
  /continue/N/NAME       N interim `100 Continue` answers, then the file; N = `forever`: interim
                         answers until the client closes the connection
  /ignore-range/NAME     200 with the whole file whatever Range says
  /bad-range/NAME        206 whose Content-Range is shifted by one byte from the requested range
  /malformed-range/NAME  206 with `Content-Range: bytes abc`
  /bad-length            `Content-Length: 12x`
  /bad-chunk             chunked body whose first chunk size is `zz`
  /status/CODE           status CODE with the body `status CODE\\n` (no body for 204 and 304)
  /longheader/N          200 with one header line of exactly N bytes including its CRLF
                         (`/longheader` alone: N = 2000)
  /manyheaders/N         200 with N extra header lines (`/manyheaders` alone: N = 100)
  /garbage               bytes that are not HTTP, then closes
  /silent                reads the request, never answers, holds the socket until the client
                         closes it (a response-head timeout)
  /echo                  200, JSON {"method", "target", "version", "headers": [[name, value]...],
                         "body": the body as latin-1 text, "body_len"}: what the client sent
  /stats                 JSON {"connections", "requests"} over the whole run
  /stats/TAG             JSON {"connections", "requests"} for TAG (zeros for an unknown tag)
"""

import json
import socketserver
import ssl
import threading
import time
from pathlib import Path

_REASONS = {
    200: "OK",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    404: "Not Found",
    416: "Range Not Satisfiable",
}
_CHUNK_SIZES = (1, 7, 100, 1000, 4096)
_IO_TIMEOUT_S = 30.0  # a misbehaving client cannot keep a handler thread forever


_AUTH_ANSWER = b'{"code": 0, "message": "success", "info": {"token": "t0k3n"}}'


class _Closed(Exception):
    """The client went away, or the behaviour asked to end the connection."""


class FaultServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, files, pki=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = Path(files)
        port = self.server_address[1]
        self.tls = None
        self.base_url = "http://127.0.0.1:%d" % port
        if pki is not None:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(pki / "server.pem", pki / "server.key")
            self.base_url = "https://localhost:%d" % port
        self.lock = threading.Lock()
        self.totals = [0, 0]  # connections, requests
        self.tags = {}  # tag -> [connections, requests]
        self.recorded = {}  # tag -> [{"method", "target", "headers", "body"}] (/record)

    def count(self, tag, new_connection):
        with self.lock:
            self.totals[1] += 1
            if tag is not None:
                entry = self.tags.setdefault(tag, [0, 0])
                entry[1] += 1
                if new_connection:
                    entry[0] += 1

    def stats(self, tag):
        with self.lock:
            conns, reqs = self.totals if tag is None else self.tags.get(tag, (0, 0))
            return {"connections": conns, "requests": reqs}


class _Handler(socketserver.BaseRequestHandler):
    server: FaultServer

    def handle(self):
        sock = self.request
        sock.settimeout(_IO_TIMEOUT_S)
        with self.server.lock:
            self.server.totals[0] += 1
        if self.server.tls is not None:
            try:
                sock = self.request = self.server.tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                return  # the client refused our certificate: that is what some tests want
        self.rfile = sock.makefile("rb")
        tags = set()
        try:
            while True:
                request = self._read_request()
                if request is None:
                    return
                method, target, version, headers, body = request
                tag = None
                parts = target.split("?", 1)[0].split("/")
                if len(parts) > 3 and parts[1] == "tag":
                    tag = parts[2]
                    parts = [""] + parts[3:]
                self.server.count(tag, tag is not None and tag not in tags)
                tags.add(tag)
                self.tag = tag
                wants_close = any(
                    n.lower() == "connection" and "close" in v.lower() for n, v in headers
                )
                self.request_info = (method, target, version, headers, body)
                self.range_header = next((v for n, v in headers if n.lower() == "range"), None)
                self._dispatch(parts[1:])
                if wants_close:
                    return
        except (_Closed, OSError, ValueError):
            return
        finally:
            self.rfile.close()
            if self.server.tls is not None:
                sock.close()

    # request parsing (bounded, the client under test is not trusted either)

    def _read_request(self):
        line = self.rfile.readline(8192)
        if not line:
            return None
        try:
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
        except ValueError:
            self._send(400, body=b"bad request line\n", close=True)
            raise _Closed() from None
        headers = []
        while True:
            line = self.rfile.readline(8192)
            if not line:
                raise _Closed()
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                break
            name, _, value = text.partition(":")
            headers.append([name, value.strip()])
            if len(headers) > 100:
                raise _Closed()
        lookup = {n.lower(): v for n, v in headers}
        body = b""
        if "chunked" in lookup.get("transfer-encoding", "").lower():
            while True:
                size = int(self.rfile.readline(100).split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline(10)
        elif "content-length" in lookup:
            body = self.rfile.read(int(lookup["content-length"]))
        return method, target, version, headers, body

    # behaviours

    def _dispatch(self, parts):
        head = parts[0] if parts else ""
        rest = parts[1:]
        if head == "echo":
            return self._echo()
        if head == "answer":
            return self._answer(rest)
        if head == "record":  # /record/TAG/ANY: remember the request whole, answer {}
            method, target, _, headers, body = self.request_info
            entry = {"method": method, "target": target, "headers": headers,
                     "body": body.decode("latin-1")}  # fmt: skip
            with self.server.lock:
                self.server.recorded.setdefault(rest[0], []).append(entry)
            return self._send(200, [("Content-Type", "application/json")], b"{}")
        if head == "recorded":  # /recorded/TAG: what /record/TAG/... received
            with self.server.lock:
                data = json.dumps(self.server.recorded.get(rest[0], [])).encode()
            return self._send(200, [("Content-Type", "application/json")], data)
        if head == "stats":
            tag = rest[0] if rest else None
            return self._send(200, [("Content-Type", "application/json")], self._json_stats(tag))
        if head == "status":
            code = int(rest[0])
            if code in (204, 304):  # no body allowed
                return self._send(code, length=False)
            return self._send(code, body=b"status %d\n" % code)
        if head.startswith("redirect"):
            return self._redirect(head, rest)
        if head == "longheader":
            size = int(rest[0]) if rest else 2000
            value = "x" * (size - len("X-Long: \r\n"))
            return self._send(200, [("X-Long", value)], b"long header\n")
        if head == "manyheaders":
            count = int(rest[0]) if rest else 100
            headers = [("X-Many-%d" % i, "v") for i in range(count)]
            return self._send(200, headers, b"many headers\n")
        if head == "silent":
            while self.request.recv(4096):  # until the client gives up
                pass
            raise _Closed()
        if head == "garbage":
            self.request.sendall(b"\x00\x01\x02 this is not HTTP at all \xff\r\n\r\n")
            raise _Closed()
        if head == "bad-length":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\nhello world\n")
            raise _Closed()
        if head == "bad-chunk":
            self.request.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
            )
            raise _Closed()
        if head in ("chunked", "nolength", "close", "hangup", "ignore-range"):
            return self._file(head, "/".join(rest))
        if head in ("bad-range", "malformed-range"):
            return self._file(head, "/".join(rest))
        if head in ("drop", "stall", "drip-head"):
            return self._file(head, "/".join(rest[1:]), int(rest[0]))
        if head == "drip":
            self.drip_ms = int(rest[0])
            return self._file(head, "/".join(rest[2:]), int(rest[1]))
        if head == "continue":
            interim = b"HTTP/1.1 100 Continue\r\n\r\n"
            if rest[0] == "forever":
                while True:  # until the client gives up (the send fails)
                    self.request.sendall(interim * 64)
            self.request.sendall(interim * int(rest[0]))
            return self._file("", "/".join(rest[1:]))
        return self._file("", "/".join(parts))

    def _echo(self):
        method, target, version, headers, body = self.request_info
        answer = {
            "method": method,
            "target": target,
            "version": version,
            "headers": headers,
            "body": body.decode("latin-1"),
            "body_len": len(body),
        }
        data = json.dumps(answer).encode()
        self._send(200, [("Content-Type", "application/json")], data)

    def _json_stats(self, tag):
        return json.dumps(self.server.stats(tag)).encode()

    def _answer(self, rest):
        # /answer/HEX/ANY-PATH: the answer HEX (hexlified JSON {"status", "body"} or {"big": N})
        # names, whatever the path after it; a path ending in "auth" gets an Aliyun token first
        spec = json.loads(bytes.fromhex(rest[0]))
        if rest[-1] == "auth":
            return self._send(200, [("Content-Type", "application/json")], _AUTH_ANSWER)
        if "location" in spec:  # a redirect
            return self._send(spec.get("status", 302), [("Location", spec["location"])], b"")
        if "big" in spec:
            body = b'{"pad": "' + b"x" * spec["big"] + b'"}'
        else:
            body = spec.get("body", "").encode()
        return self._send(spec.get("status", 200), [("Content-Type", "application/json")], body)

    def _redirect(self, head, rest):
        kind = head.partition("-")[2]
        code = int(kind[-3:]) if kind[-3:].isdigit() else 302
        count = int(rest[0])
        tail = "/".join(rest[1:])
        if count == 0:
            return self._dispatch(rest[1:])
        location = "/%s/%d/%s" % (head, count - 1, tail)
        if self.tag is not None:
            location = "/tag/%s%s" % (self.tag, location)
        if kind.startswith("abs"):
            location = self.server.base_url + location
        self._send(code, [("Location", location)], b"redirect\n")

    def _file(self, mode, name, k=0):
        path = (self.server.files / name).resolve()
        if not name or not path.is_relative_to(self.server.files.resolve()) or not path.is_file():
            return self._send(404, body=b"not found\n")
        data = path.read_bytes()
        size = len(data)
        status, headers = 200, [("Content-Type", "application/octet-stream")]
        wanted = None if mode == "ignore-range" else _parse_range(self.range_header, size)
        if wanted == "unsatisfiable":
            return self._send(416, [("Content-Range", "bytes */%d" % size)], b"")
        if wanted is not None:
            start, end = wanted
            data = data[start : end + 1]
            status = 206
            if mode == "bad-range":
                start, end = start + 1, end + 1
            headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
            if mode == "malformed-range":
                headers[-1] = ("Content-Range", "bytes abc")
        if mode == "chunked":
            return self._send_chunked(status, headers, data)
        if mode == "nolength":
            self._send(status, headers, data, close=True, length=False)
            raise _Closed()
        if mode == "close":
            self._send(status, headers, data, close=True)
            raise _Closed()
        if mode == "drip":
            self._send(
                status, headers + [("Content-Length", str(len(data)))], data[:k], length=False
            )
            for i in range(k, len(data)):
                time.sleep(self.drip_ms / 1000)  # the fault itself: a server this slow
                self.request.sendall(data[i : i + 1])
            return
        if mode == "drip-head":
            self._send(status, headers, data, drip_ms=k)
            return
        if mode in ("drop", "stall"):
            self._send(
                status, headers + [("Content-Length", str(len(data)))], data[:k], length=False
            )
            if mode == "drop":
                raise _Closed()
            while self.request.recv(4096):  # hold the socket open until the client gives up
                pass
            raise _Closed()
        self._send(status, headers, data)
        if mode == "hangup":
            raise _Closed()

    # response writing

    def _send(self, status, headers=(), body=b"", close=False, length=True, drip_ms=0):
        lines = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Status"))]
        lines += ["%s: %s" % (n, v) for n, v in headers]
        if length:
            lines.append("Content-Length: %d" % len(body))
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for i in range(len(head) if drip_ms else 0):
            self.request.sendall(head[i : i + 1])
            time.sleep(drip_ms / 1000)  # the fault itself: a head this slow
        self.request.sendall((b"" if drip_ms else head) + body)

    def _send_chunked(self, status, headers, data):
        lines = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Status"))]
        lines += ["%s: %s" % (n, v) for n, v in headers]
        lines.append("Transfer-Encoding: chunked")
        out = [("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")]
        pos = 0
        index = 0
        while pos < len(data):
            piece = data[pos : pos + _CHUNK_SIZES[index % len(_CHUNK_SIZES)]]
            out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
            pos += len(piece)
            index += 1
        out.append(b"0\r\n\r\n")
        self.request.sendall(b"".join(out))


def _parse_range(header, size):
    """(start, end) for `bytes=A-B`, `bytes=A-` or bare `A-B`; "unsatisfiable"; or None."""
    if header is None:
        return None
    spec = header.strip()
    if spec.startswith("bytes="):
        spec = spec[len("bytes=") :]
    first, sep, last = spec.partition("-")
    if not sep or not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return start, min(end, size - 1)
