# The application's own transport (fota.app.agent.transport): the HTTP client connects through
# the registered function instead of a socket, as on an nRF9160 whose modem offloads sockets and
# TLS, and reads and writes only through the stream's documented methods.

import errno

from dual import fails

import fota
from fota.app import agent
from fota.core import errors
from fota.transport.http import Client

RUN_ON_MICROPYTHON = True


class Stream:
    """A connected stream that answers each request with the next canned answer and records
    every call made on it."""

    def __init__(self, log, answers):
        self.log = log
        self.answers = answers
        self.data = b""
        self.pos = 0

    def settimeout(self, seconds):
        self.log.append(("settimeout", seconds > 0))

    def write(self, buf):
        self.log.append(("write", bytes(buf)))
        if bytes(buf).endswith(b"\r\n\r\n") and self.pos >= len(self.data):
            self.data, self.pos = self.answers.pop(0), 0
        return len(buf)

    def readinto(self, buf, n):
        if self.data is None:
            raise OSError(errno.ETIMEDOUT)
        n = min(n, len(self.data) - self.pos, 700)  # a modem hands over a packet at a time
        buf[0:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        self.log.append(("readinto", n))
        return n

    def close(self):
        self.log.append(("close",))


def _answer(status, body, extra=b""):
    head = "HTTP/1.1 %d X\r\nContent-Length: %d\r\n" % (status, len(body))
    return head.encode() + extra + b"\r\n" + body


def _register(answers):
    log = []

    def connect(host, port, tls):
        log.append(("connect", host, port, tls))
        return Stream(log, answers)

    agent.transport(connect)
    return log


def test_requests_go_through_the_registered_transport():
    body = bytes(range(256)) * 40
    part = b"Content-Range: bytes 0-9999/10240\r\n"
    answers = [_answer(200, b'{"ok": 1}'), _answer(206, body[:10000], part)]
    log = _register(answers)
    try:
        client = Client(ca=b"0", connect_timeout=2.0, read_timeout=3.0)
        resp = client.request("GET", "https://ota.example.com:8443/check?x=1")
        assert resp.status == 200 and resp.json() == {"ok": 1}
        resp = client.get_range("https://ota.example.com:8443/fw.bin", 0, 9999)
        assert resp.status == 206 and resp.range_total == 10240
        got = bytearray()
        buf = bytearray(4096)
        while True:
            n = resp.readinto(buf)
            if not n:
                break
            got += buf[:n]
        assert bytes(got) == body[:10000]
        client.close()
        # one connection, kept alive; TLS is the transport's (tls=True, no wrapping here)
        assert [e for e in log if e[0] == "connect"] == [("connect", "ota.example.com", 8443, True)]
        assert client.connects == 1
        heads = [e[1] for e in log if e[0] == "write"]
        assert b"".join(heads).startswith(b"GET /check?x=1 HTTP/1.1\r\n")
        assert b"GET /fw.bin HTTP/1.1\r\n" in b"".join(heads)
        assert b"Range: bytes=0-9999\r\n" in b"".join(heads)
        assert ("settimeout", True) in log and log[-1] == ("close",)
        assert {e[0] for e in log} == {"connect", "settimeout", "write", "readinto", "close"}
    finally:
        fota.connect = None


def test_transport_failures_are_the_agents_errors():
    def refuse(host, port, tls):
        raise OSError(errno.ECONNREFUSED)

    agent.transport(refuse)
    try:
        client = Client(allow_http=True)
        exc = fails(errors.DOWNLOAD, client.request, "GET", "http://10.0.0.1/x")
        assert "connect to 10.0.0.1:80" in exc.message and exc.retryable
        log = _register([None])  # connected, then the answer never comes
        exc = fails(errors.TIMEOUT, client.request, "GET", "http://10.0.0.1/x")
        assert log[0] == ("connect", "10.0.0.1", 80, False)
    finally:
        fota.connect = None
