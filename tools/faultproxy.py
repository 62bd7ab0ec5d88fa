"""A fault-injecting HTTP proxy to put between the agent and any HTTP server.

usage: python tools/faultproxy.py --upstream http://127.0.0.1:8080 [--listen 127.0.0.1:9000]
                                  [--mode MODE] [--times K] [--skip S] [--only REGEX]
                                  [--seed N] [--upstream-host]

The agent (a test, `make demo`, or a real board on the desk) talks plain HTTP to the proxy;
the proxy forwards each request to the upstream server (aiohttp's client) and writes the answer
back itself, with one fault applied to the answers the fault is armed for: answers number S+1
.. S+K of those whose path (without the query) matches REGEX (all of them without --times;
control requests are never counted). One line per request on stdout:

  #3 GET /fw.bin bytes=65536-131071 -> 206 65536 B: reset at 4096 (fault 1 of 2)

MODE (the argument after `=`: a byte offset in the answer's body, or `random`: a new random
offset in each faulted body, from --seed)
  pass              no fault (the default): a plain proxy
  reset-at=N        send N body bytes, then reset the connection (TCP RST)
  truncate-at=N     send N body bytes, then close the connection (FIN) as if the body ended
  stall-at=N        send N body bytes, then nothing more; the connection stays open until
                    the client gives up
  flip-at=N         invert the body byte at offset N (a corrupt transfer; the digest catches it)
  drip=MS           send the head at once, then the body one byte every MS milliseconds
  ignore-range      drop the Range header: the upstream answers 200 with the whole file
  no-length         no Content-Length: the body ends when the proxy closes the connection
  chunked           the body in chunked transfer encoding (chunk sizes 1, 7, 100, 1000, 4096)
  status=CODE       answer CODE (e.g. 503: a burst of K server errors with --times K) without
                    asking the upstream
  swap=PATH         forward the request for PATH instead: another file under the same URL
                    (its ETag and maybe its size differ)
  redirect-loop     answer 302 with the request's own URL as Location

The Host header is forwarded as the agent sent it, so that a cloud emulator upstream builds its
download URLs on the proxy's address and the download goes through the proxy too
(--upstream-host sends the upstream's own host name instead, for a virtual-hosted server).

Control API (JSON; for tests on the MicroPython port, which reach the proxy over HTTP only)
  GET  /_proxy          {"mode", "times", "skip", "only", "faults": faults applied, "requests"}
  POST /_proxy          {"mode", "times", "skip", "only", "seed"} -> the same; re-arms the
                        fault and clears the log and counters
  GET  /_proxy/log      [{"n", "method", "path", "range", "status", "sent", "size", "fault"}...]

In Python (tools/ on sys.path), e.g. as a pytest fixture:

  with faultproxy.start("http://127.0.0.1:8080", mode="reset-at=4096", times=2) as proxy:
      url = proxy.url + "/fw.bin"
      ...
      proxy.arm("drip=20", times=1)   # another fault, the log cleared
      proxy.log                         # the records above, as dicts

Errors: `faultproxy: message` on stderr, exit status 1.
"""

import asyncio
import json
import random
import re
import socket
import struct
import sys
import threading
from urllib.parse import urlsplit

import aiohttp
import cli

MODES = {  # name -> what its argument is: None (no argument), "offset", "int", "path"
    "pass": None,
    "reset-at": "offset",
    "truncate-at": "offset",
    "stall-at": "offset",
    "flip-at": "offset",
    "drip": "int",
    "ignore-range": None,
    "no-length": None,
    "chunked": None,
    "status": "int",
    "swap": "path",
    "redirect-loop": None,
}
_CHUNK_SIZES = (1, 7, 100, 1000, 4096)
_HOP = {  # hop-by-hop headers (RFC 9110 7.6.1) and those the proxy writes itself
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
_MAX_HEAD = 65536
_UPSTREAM_TIMEOUT_S = 30
_START_TIMEOUT_S = 10
_STOP_TIMEOUT_S = 10
_REASONS = {200: "OK", 206: "Partial Content", 302: "Found", 400: "Bad Request",
            404: "Not Found", 502: "Bad Gateway", 503: "Service Unavailable"}  # fmt: skip


class ProxyError(cli.ToolError):
    pass


def parse_mode(text):
    """'reset-at=4096' -> ('reset-at', 4096); 'reset-at=random' -> ('reset-at', 'random')."""
    name, _, arg = text.partition("=")
    if name not in MODES:
        raise ProxyError("unknown mode %r (one of %s)" % (name, ", ".join(MODES)))
    kind = MODES[name]
    if kind is None:
        if arg:
            raise ProxyError("mode %s takes no argument" % name)
        return name, None
    if not arg:
        raise ProxyError("mode %s needs an argument: %s=..." % (name, name))
    if kind == "path":
        return name, arg if arg.startswith("/") else "/" + arg
    if kind == "offset" and arg == "random":
        return name, "random"
    if not arg.isdigit():
        raise ProxyError("mode %s: %r is not a number" % (name, arg))
    return name, int(arg)


class _Closed(Exception):
    """The client went away or sent something that ends the connection."""


class FaultProxy:
    """The proxy's state, shared by its connections (all on one event loop)."""

    def __init__(self, upstream, mode="pass", times=None, skip=0, only=None, seed=None,
                 upstream_host=False, out=None):  # fmt: skip
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ProxyError("--upstream must be an http://HOST[:PORT] URL, not %r" % upstream)
        self.upstream = "http://%s" % parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.upstream_host = upstream_host
        self.out = out
        self.session = None
        self.stopping = None
        self.arm(mode, times, skip, only, seed)

    def arm(self, mode="pass", times=None, skip=0, only=None, seed=None):
        self.mode, self.arg = parse_mode(mode)
        if times is not None and times < 0 or skip < 0:
            raise ProxyError("--times and --skip must not be negative")
        try:
            self.pattern = re.compile(only) if only is not None else None
        except (re.error, TypeError) as exc:
            raise ProxyError("--only: not a regular expression: %s" % exc) from None
        self.times, self.skip, self.only = times, skip, only
        self.random = random.Random(seed)
        self.seed = seed
        self.requests = 0  # requests counted (not control ones)
        self.matched = 0  # of those, the ones --only selects
        self.faults = 0
        self.log = []

    def state(self):
        mode = self.mode if self.arg is None else "%s=%s" % (self.mode, self.arg)
        return {"mode": mode, "times": self.times, "skip": self.skip, "only": self.only,
                "faults": self.faults, "requests": self.requests}  # fmt: skip

    def _fault_for(self, path):
        # -> the fault to apply to this request, or None; counts it
        self.requests += 1
        if self.mode == "pass" or (self.pattern is not None and not self.pattern.search(path)):
            return None
        self.matched += 1
        if self.matched <= self.skip:
            return None
        if self.times is not None and self.faults >= self.times:
            return None
        self.faults += 1
        return self.mode

    # -- one client connection

    async def serve(self, reader, writer):
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, target, headers, body = request
                close = any(n == "connection" and "close" in v.lower() for n, v in headers)
                if target == "/_proxy" or target.startswith("/_proxy/"):
                    await self._control(writer, method, target, body)
                elif not await self._forward(reader, writer, method, target, headers, body):
                    return
                if close:
                    return
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _control(self, writer, method, target, body):
        status, answer = 200, None
        if target == "/_proxy/log" and method == "GET":
            answer = self.log
        elif target == "/_proxy" and method == "GET":
            answer = self.state()
        elif target == "/_proxy" and method == "POST":
            try:
                spec = json.loads(body or b"{}")
                self.arm(spec.get("mode", "pass"), spec.get("times"), spec.get("skip", 0),
                         spec.get("only"), spec.get("seed"))  # fmt: skip
                answer = self.state()
            except (ValueError, TypeError, AttributeError, ProxyError) as exc:
                status, answer = 400, {"error": str(exc)}
        else:
            status, answer = 404, {"error": "no such control request: %s %s" % (method, target)}
        data = json.dumps(answer).encode()
        await _write_head(writer, status, [("Content-Type", "application/json")], len(data))
        writer.write(data)
        await writer.drain()

    async def _forward(self, reader, writer, method, target, headers, body):
        """One request: the upstream's answer, with this request's fault. -> keep the
        connection open."""
        path = target.split("?", 1)[0]
        fault = self._fault_for(path)
        arg = self.arg
        wanted = next((v for n, v in headers if n == "range"), None)
        record = {"n": self.requests, "method": method, "path": target, "range": wanted,
                  "status": None, "sent": 0, "size": None, "fault": None}  # fmt: skip
        self.log.append(record)
        try:
            if fault == "status":
                return await self._answer(writer, record, arg, b"fault: status %d\n" % arg)
            if fault == "redirect-loop":
                record["fault"] = "redirect loop"
                return await self._answer(writer, record, 302, b"redirect\n", target)
            send = [(n, v) for n, v in headers if n not in _HOP]
            if fault == "ignore-range":
                send = [(n, v) for n, v in send if n != "range"]
                record["fault"] = "Range dropped"
            if self.upstream_host:
                send = [(n, v) for n, v in send if n != "host"]
            upstream_target = target
            if fault == "swap":
                upstream_target = arg
                record["fault"] = "swapped for %s" % arg
            try:
                async with self.session.request(
                    method, self.upstream + self.prefix + upstream_target, headers=send,
                    data=body or None, allow_redirects=False, auto_decompress=False,
                ) as resp:  # fmt: skip
                    status = resp.status
                    reply = [  # as the upstream spelled them
                        (n.decode("latin-1"), v.decode("latin-1"))
                        for n, v in resp.raw_headers
                        if n.decode("latin-1").lower() not in _HOP
                    ]
                    length = resp.headers.get("Content-Length")  # what a HEAD answer says
                    data = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                record["fault"] = "upstream failed: %s" % (exc or type(exc).__name__)
                return await self._answer(writer, record, 502, b"upstream failed\n")
            record["status"] = status
            record["size"] = len(data)
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                if method == "HEAD" and length is not None:
                    reply.append(("Content-Length", length))
                await _write_head(writer, status, reply, None)
                return True
            return await self._body(reader, writer, record, fault, status, reply, data)
        finally:
            self._print(record)

    async def _answer(self, writer, record, status, body, location=None):
        extra = [("Location", location)] if location else []
        record["status"], record["size"] = status, len(body)
        if record["fault"] is None and status >= 400:
            record["fault"] = "status %d" % status
        await _write_head(writer, status, extra + [("Content-Type", "text/plain")], len(body))
        writer.write(body)
        await writer.drain()
        record["sent"] = len(body)
        return True

    async def _body(self, reader, writer, record, fault, status, reply, data):
        arg = self.arg
        if arg == "random":
            arg = self.random.randrange(len(data)) if data else 0
        size = len(data)
        if fault == "flip-at":
            if arg < size:
                data = data[:arg] + bytes([data[arg] ^ 0xFF]) + data[arg + 1 :]
                record["fault"] = "byte %d flipped" % arg
            else:
                record["fault"] = "byte %d flipped: past the end, nothing changed" % arg
        if fault == "chunked":
            record["fault"] = "chunked"
            await _write_head(writer, status, reply + [("Transfer-Encoding", "chunked")], None)
            pos, i = 0, 0
            while pos < size:
                piece = data[pos : pos + _CHUNK_SIZES[i % len(_CHUNK_SIZES)]]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                pos += len(piece)
                i += 1
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            record["sent"] = size
            return True
        if fault == "no-length":
            record["fault"] = "no Content-Length, closed at the end"
            await _write_head(writer, status, reply + [("Connection", "close")], None)
            writer.write(data)
            await writer.drain()
            record["sent"] = size
            return False
        await _write_head(writer, status, reply, size)
        if fault == "drip":
            record["fault"] = "drip, one byte every %d ms" % arg
            for i in range(size):
                writer.write(data[i : i + 1])
                await writer.drain()
                record["sent"] = i + 1
                await asyncio.sleep(arg / 1000)
            return True
        if fault in ("reset-at", "truncate-at", "stall-at") and arg < size:
            writer.write(data[:arg])
            await writer.drain()
            record["sent"] = arg
            if fault == "reset-at":
                record["fault"] = "reset at %d" % arg
                _reset(writer)
                raise _Closed()
            if fault == "truncate-at":
                record["fault"] = "closed at %d" % arg
                return False
            record["fault"] = "stalled at %d" % arg
            self._print(record)
            record["printed"] = True
            while await reader.read(65536):  # until the client gives up (or the proxy stops)
                pass
            raise _Closed()
        if fault in ("reset-at", "truncate-at", "stall-at"):
            record["fault"] = "%s %d: past the end, not applied" % (fault, arg)
        writer.write(data)
        await writer.drain()
        record["sent"] = size
        return True

    def _print(self, record):
        if self.out is None or record.pop("printed", False):
            return
        line = "#%d %s %s" % (record["n"], record["method"], record["path"])
        if record["range"]:
            line += " " + record["range"]
        line += " -> %s" % (record["status"] if record["status"] is not None else "-")
        if record["size"] is not None:
            line += " %d B" % record["size"]
        if record["fault"]:
            count = "" if self.times is None else " of %d" % self.times
            line += ": %s (fault %d%s)" % (record["fault"], self.faults, count)
        print(line, file=self.out, flush=True)


async def _read_request(reader):
    # -> (method, target, [(lowercase name, value)], body) or None at a clean end
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _Closed() from None
        return None
    except asyncio.LimitOverrunError:
        raise _Closed() from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ")
    except ValueError:
        raise _Closed() from None
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    body = b""
    length = next((v for n, v in headers if n == "content-length"), None)
    if length is not None:
        if not length.isdigit():
            raise _Closed()
        body = await reader.readexactly(int(length))
    elif any(n == "transfer-encoding" for n, _ in headers):
        raise _Closed()  # chunked requests: the agent never sends them
    return method, target, headers, body


async def _write_head(writer, status, headers, length):
    lines = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Status"))]
    lines += ["%s: %s" % (n, v) for n, v in headers]
    if length is not None:
        lines.append("Content-Length: %d" % length)
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()


def _reset(writer):
    # close with a TCP RST instead of a FIN: SO_LINGER on, timeout 0
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class Server:
    """A running proxy in a thread of its own: .url, .proxy (its FaultProxy), .arm(), .log,
    .stop(); a context manager."""

    def __init__(self, proxy, host="127.0.0.1", port=0):
        self.proxy = proxy
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(128)
        except (OSError, OverflowError) as exc:
            raise ProxyError("cannot listen on %s port %s: %s" % (host, port, exc)) from None
        name = "[%s]" % host if ":" in host else host
        self.url = "http://%s:%d" % (name, self._sock.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S) or self._error is not None:
            raise ProxyError("the proxy did not start: %s" % (self._error or "timeout"))

    @property
    def log(self):
        return self._call(lambda: [dict(r) for r in self.proxy.log])

    def arm(self, mode="pass", times=None, skip=0, only=None, seed=None):
        """Another fault from now on; clears the log and counters."""
        self._call(lambda: self.proxy.arm(mode, times, skip, only, seed))

    def state(self):
        return self._call(self.proxy.state)

    def _call(self, fn):
        # run fn on the proxy's loop (its state is the loop's), return its result
        async def call():
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(_STOP_TIMEOUT_S)

    def stop(self):
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(_STOP_TIMEOUT_S)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _run(self):
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_quiet)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self):
        self._stopping = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=_UPSTREAM_TIMEOUT_S)
        clients = set()

        async def serve(reader, writer):
            task = asyncio.current_task()
            clients.add(task)
            try:
                await self.proxy.serve(reader, writer)
            finally:
                clients.discard(task)

        try:
            async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
                self.proxy.session = session
                server = await asyncio.start_server(serve, sock=self._sock)
                self._ready.set()
                async with server:
                    await self._stopping.wait()
                    server.close()
                    for task in list(clients):  # stalled answers wait for their client: end them
                        task.cancel()
                    await asyncio.gather(*clients, return_exceptions=True)
        except Exception as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()


def _quiet(loop, context):
    # clients under test drop connections on purpose: not the proxy's errors
    if isinstance(context.get("exception"), (ConnectionError, asyncio.CancelledError)):
        return
    loop.default_exception_handler(context)


def start(upstream, mode="pass", times=None, skip=0, only=None, seed=None, host="127.0.0.1",
          port=0, upstream_host=False, out=None):  # fmt: skip
    """A running proxy in front of `upstream` (see the module docstring); stop() it, or use it
    as a context manager."""
    return Server(FaultProxy(upstream, mode, times, skip, only, seed, upstream_host, out),
                  host, port)  # fmt: skip


def _listen_arg(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ProxyError("--listen must be HOST:PORT, not %r" % text)
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv=None):
    parser = cli.Parser(
        prog="faultproxy.py",
        description="A fault-injecting HTTP proxy between the agent and a server.",
        epilog="Modes: " + ", ".join(MODES) + " (see the module docstring).",
    )
    parser.add_argument("--upstream", required=True, help="http://HOST[:PORT] to forward to")
    parser.add_argument(
        "--listen", default="127.0.0.1:9000", help="HOST:PORT (default %(default)s)"
    )
    parser.add_argument("--mode", default="pass", help="the fault, e.g. reset-at=4096")
    parser.add_argument("--times", type=int, help="fault this many answers, then pass")
    parser.add_argument("--skip", type=int, default=0, help="pass this many answers first")
    parser.add_argument("--only", help="fault only requests whose path matches this regex")
    parser.add_argument("--seed", type=int, help="seed of the random offsets")
    parser.add_argument("--upstream-host", action="store_true",
                        help="send the upstream's host name as Host, not the client's")  # fmt: skip
    args = parser.parse_args(argv)
    host, port = _listen_arg(args.listen)
    server = start(args.upstream, args.mode, args.times, args.skip, args.only, args.seed,
                   host, port, args.upstream_host, sys.stdout)  # fmt: skip
    print("faultproxy: %s -> %s, mode %s" % (server.url, args.upstream, args.mode), flush=True)
    try:
        server._thread.join()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(cli.run("faultproxy", main))
