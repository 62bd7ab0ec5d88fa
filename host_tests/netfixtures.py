"""Local servers for the network tests, started once per pytest run (a pytest plugin).

`pytest_configure` starts everything below and `pytest_unconfigure` stops it. They are not
fixtures because the MicroPython items (conftest.py) have no fixtures: every test, on either
runtime, finds the servers through environment variables (`os.getenv`), which the MicroPython
subprocesses inherit. If nginx is missing the run stops with the apt-get command to fix it.

Environment contract
--------------------
FOTA_TEST_FILES      a directory of test files, served by all three servers. Generated at start:
                       empty.bin   0 bytes
                       small.bin   10,000 bytes
                       medium.bin  300,000 bytes
                       large.bin   1,500,000 bytes
                     (deterministic content: sha256 counter stream, see `_content`),
                     manifest.json  {name: {"size": int, "md5": hex, "sha256": hex}} for those,
                     ca.der / wrong-ca.der  the test CA that signed the TLS server's certificate,
                     and an unrelated CA (both DER, for `load_verify_locations(cadata=...)`).
                     Tests may add their own files at any time; every server serves them at once.
FOTA_TEST_NGINX      http://127.0.0.1:PORT   nginx (Debian package), keep-alive on, Range as nginx
                     does it (206 + Content-Range, clamped ends, 416). Also:
                       /nginx-status       nginx stub_status (accepts/handled/requests counters)
                       /to-tls/PATH        302 to FOTA_TEST_NGINX_TLS/PATH
FOTA_TEST_NGINX_TLS  https://localhost:PORT  the same files over TLS; the certificate names only
                     DNS:localhost, signed by ca.der (so https://127.0.0.1:PORT must fail the host
                     name check). Also:
                       /to-plain/PATH      302 to FOTA_TEST_NGINX/PATH (https -> http redirect)
FOTA_TEST_HTTP       http://127.0.0.1:PORT   the fault-injecting server below.
FOTA_TEST_HTTPS      https://localhost:PORT  the same fault-injecting server over TLS (the same
                     certificate as nginx's, signed by ca.der), e.g. a stall or a drop under TLS.
FOTA_TEST_ONENET     http://127.0.0.1:PORT   the OneNET legacy OTA emulator (tools/emu)
FOTA_TEST_ONENET_FUSE  http://127.0.0.1:PORT  the OneNET fuse OTA emulator
FOTA_TEST_SAGOO      http://127.0.0.1:PORT   the Sagoo OTA emulator
FOTA_TEST_MXCHIP     http://127.0.0.1:PORT   the MXCHIP FOG emulator (device and management API)
FOTA_TEST_ALIYUN     http://127.0.0.1:PORT   the Aliyun IoT HTTP-channel emulator (/auth, /topic)
FOTA_TEST_ONENET_TLS https://localhost:PORT  a second OneNET legacy emulator, over TLS (the same
                     certificate as nginx's, signed by ca.der)

Cloud emulators (FOTA_TEST_ONENET, _ONENET_FUSE, _SAGOO, _MXCHIP, _ALIYUN, _ONENET_TLS)
-------------------------------------------------------------------------------------
In-process instances of tools/emulator.py with its default credentials, started with no
update. They are shared by the whole run: a test starts with `emuctl.reset(base, image=PATH,
version=...)` (host_tests/emuctl.py, both runtimes), which clears the previous test's task,
log, faults and clock. Write images into FOTA_TEST_FILES and pass their absolute path. The
control API, faults and defaults are documented in tools/emulator.py.

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
  /redirect-abs/N/REST   302 with an absolute Location (this server's own base URL)
  /close/NAME            the file with `Connection: close`, then closes
  /hangup/NAME           the file as a normal keep-alive answer, then closes the connection
                         without notice (an idle keep-alive connection the server dropped)
  /drop/K/NAME           headers with the full Content-Length, K body bytes, then closes
  /stall/K/NAME          headers with the full Content-Length, K body bytes, then sends nothing
                         more but keeps the socket open until the client closes it
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

import datetime
import hashlib
import json
import os
import shutil
import socketserver
import ssl
import sys
import tempfile
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import emu  # noqa: E402  (tools/emu: the cloud emulators)
import nginx  # noqa: E402  (tools/nginx.py: the nginx runner the bench uses too)

FILES = (("empty.bin", 0), ("small.bin", 10_000), ("medium.bin", 300_000), ("large.bin", 1_500_000))
ENV_NAMES = (
    "FOTA_TEST_FILES",
    "FOTA_TEST_NGINX",
    "FOTA_TEST_NGINX_TLS",
    "FOTA_TEST_HTTP",
    "FOTA_TEST_HTTPS",
    "FOTA_TEST_ONENET",
    "FOTA_TEST_ONENET_FUSE",
    "FOTA_TEST_SAGOO",
    "FOTA_TEST_ONENET_TLS",
    "FOTA_TEST_MXCHIP",
    "FOTA_TEST_ALIYUN",
)
EMULATORS = (
    ("FOTA_TEST_ONENET", "onenet", False),
    ("FOTA_TEST_ONENET_FUSE", "onenet-fuse", False),
    ("FOTA_TEST_SAGOO", "sagoo", False),
    ("FOTA_TEST_ONENET_TLS", "onenet", True),
    ("FOTA_TEST_MXCHIP", "mxchip", False),
    ("FOTA_TEST_ALIYUN", "aliyun", False),
)
APT_HINT = "nginx is required for the network tests: run `apt-get install -y nginx`"

_state = {}


# -- pytest hooks -------------------------------------------------------------------------------


def pytest_configure(config):
    if _state or config.option.help or config.option.version:
        return
    try:
        nginx.binary()  # before anything starts: fail loudly with the fix
    except nginx.NginxError:
        raise pytest.UsageError(APT_HINT) from None
    try:
        _start_all()
    except nginx.NginxError as exc:
        pytest_unconfigure(config)
        raise pytest.UsageError(str(exc)) from None
    except BaseException:
        pytest_unconfigure(config)
        raise


def _start_all():
    root = Path(tempfile.mkdtemp(prefix="fota-net-"))
    _state["root"] = root
    files = root / "files"
    files.mkdir()
    _make_files(files)
    pki = root / "pki"
    pki.mkdir()
    _make_pki(files, pki)
    fault = _FaultServer(files)
    fault_tls = _FaultServer(files, pki)
    _state["fault"] = (fault, fault_tls)
    for server in (fault, fault_tls):
        threading.Thread(target=server.serve_forever, name="fota-fault", daemon=True).start()
    server = nginx.Nginx(_nginx_servers(files, pki), nports=2)
    _state["nginx"] = server
    plain, tls = server.start()
    os.environ["FOTA_TEST_FILES"] = str(files)
    os.environ["FOTA_TEST_NGINX"] = "http://127.0.0.1:%d" % plain
    os.environ["FOTA_TEST_NGINX_TLS"] = "https://localhost:%d" % tls
    os.environ["FOTA_TEST_HTTP"] = fault.base_url
    os.environ["FOTA_TEST_HTTPS"] = fault_tls.base_url
    _start_emulators(pki)


def _start_emulators(pki):
    servers = _state["emulators"] = []
    tls = (str(pki / "server.pem"), str(pki / "server.key"))
    for env, cloud, secure in EMULATORS:
        if secure:
            server = emu.start(cloud, tls=tls, url_host="localhost")
        else:
            server = emu.start(cloud)
        servers.append(server)
        os.environ[env] = server.url


def pytest_unconfigure(config):
    server = _state.pop("nginx", None)
    if server is not None:
        server.stop()
    for server in _state.pop("emulators", ()):
        server.stop()
    for server in _state.pop("fault", ()):
        server.shutdown()
        server.server_close()
    root = _state.pop("root", None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
    for name in ENV_NAMES:
        os.environ.pop(name, None)


# -- test files and certificates ----------------------------------------------------------------


def _content(name, size):
    """Deterministic bytes: sha256(name + counter) blocks, cut to size."""
    out = bytearray()
    counter = 0
    seed = name.encode()
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:size])


def _make_files(files):
    manifest = {}
    for name, size in FILES:
        data = _content(name, size)
        (files / name).write_bytes(data)
        manifest[name] = {
            "size": size,
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    (files / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _make_pki(files, pki):
    """ca.der + wrong-ca.der in files/; the server's chain and key (PEM) in pki/."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def ca(text):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(text))
            .issuer_name(name(text))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca_cert = ca("fota test CA")
    _, wrong_cert = ca("fota wrong CA")
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    der = serialization.Encoding.DER
    pem = serialization.Encoding.PEM
    (files / "ca.der").write_bytes(ca_cert.public_bytes(der))
    (files / "wrong-ca.der").write_bytes(wrong_cert.public_bytes(der))
    (pki / "server.pem").write_bytes(leaf.public_bytes(pem) + ca_cert.public_bytes(pem))
    (pki / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


# -- nginx --------------------------------------------------------------------------------------


def _nginx_servers(files, pki):
    def servers(ports):
        plain, tls = ports
        return f"""\
    server {{
        listen 127.0.0.1:{plain};
        root {files};
        location / {{ }}
        location = /nginx-status {{ stub_status; }}
        location ~ ^/to-tls/(.*)$ {{ return 302 https://localhost:{tls}/$1; }}
    }}
    server {{
        listen 127.0.0.1:{tls} ssl;
        server_name localhost;
        ssl_certificate {pki}/server.pem;
        ssl_certificate_key {pki}/server.key;
        root {files};
        location / {{ }}
        location ~ ^/to-plain/(.*)$ {{ return 302 http://127.0.0.1:{plain}/$1; }}
    }}"""

    return servers


# -- the fault-injecting server -----------------------------------------------------------------

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


class _Closed(Exception):
    """The client went away, or the behaviour asked to end the connection."""


class _FaultServer(socketserver.ThreadingTCPServer):
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
    server: _FaultServer

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
        if head in ("drop", "stall"):
            return self._file(head, "/".join(rest[1:]), int(rest[0]))
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

    def _redirect(self, head, rest):
        kind = head.partition("-")[2]
        code = int(kind) if kind.isdigit() else 302
        count = int(rest[0])
        tail = "/".join(rest[1:])
        if count == 0:
            return self._dispatch(rest[1:])
        location = "/%s/%d/%s" % (head, count - 1, tail)
        if self.tag is not None:
            location = "/tag/%s%s" % (self.tag, location)
        if kind == "abs":
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

    def _send(self, status, headers=(), body=b"", close=False, length=True):
        lines = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Status"))]
        lines += ["%s: %s" % (n, v) for n, v in headers]
        if length:
            lines.append("Content-Length: %d" % len(body))
        if close:
            lines.append("Connection: close")
        self.request.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

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
