# tools/emu/base.py: what every cloud emulator shares.
#
# A cloud module subclasses Emulator: it declares its credentials, its reset options, its device
# routes and the endpoint names faults can target, and answers through the writers here. This
# module turns that into an aiohttp application with
#   - the control API under /_emu/ (control.py);
#   - a record of every device request, in arrival order;
#   - a fault queue drawn by the next matching requests: drop, stall, silent, status, code are
#     applied here on the wire; wrong_digest and error_body are the cloud handlers' to apply;
#   - a clock the tests can shift (token expiry, task lifetimes, timestamp windows).
# Everything runs on the server's one event loop (tools/emu/server.py), so no locks.

import asyncio
import json
import time

from aiohttp import web

from . import control
from .records import FAULT_KINDS, ControlError, EmuError, Image

_CUT = ("drop", "stall")  # faults applied to the body once the handler has answered


class Exchange:
    """One device request: its body, parsed JSON (or None), log record and drawn fault."""

    __slots__ = ("request", "body", "json", "record", "fault", "endpoint")

    def __init__(self, request, body, endpoint):
        self.request = request
        self.body = body
        self.endpoint = endpoint
        self.fault = None
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.record = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": headers,
            "json": self.json,
            "body_len": len(body),
            "status": None,
            "answer": None,
            "range": headers.get("range"),
            "endpoint": endpoint,
            "fault": None,
        }

    @property
    def query(self):
        return self.request.query

    def header(self, name):
        return self.request.headers.get(name)


class _CloseDelimited(web.StreamResponse):
    # No Content-Length and no chunked encoding: the body ends when the connection closes.
    # aiohttp switches chunking off with this class attribute (its WebSocketResponse does).
    _length_check = False


class Emulator:
    """Base of the cloud emulators. Subclasses set the class attributes and the hooks below."""

    cloud = ""
    CREDENTIALS = ()  # (name, default, help): fixed for the server's life
    OPTIONS = {}  # reset option -> default (the start options replace these defaults)
    CLI_OPTIONS = ()  # (option, type, help): reset options also offered on the command line
    ENDPOINTS = ()  # names the faults' "on" can take
    FAULT_KINDS = FAULT_KINDS  # the fault kinds this cloud has
    TASK_STATES = ()  # states /_emu/task may set
    # the device's /ota.json section: (section, ((its key, the credential it holds), ...))
    DEVICE_CONFIG = ("", ())

    def __init__(self, image=None, version=None, any_version=False, **options):
        self.creds = {name: default for name, default, _ in self.CREDENTIALS}
        self.defaults = dict(self.OPTIONS)
        for name, value in options.items():
            if name in self.creds:
                self.creds[name] = value
            elif name in self.defaults:
                self.defaults[name] = value
            else:
                raise EmuError("%s: unknown option %r" % (self.cloud, name))
        self.log = []
        self.faults = []
        self.offset = 0.0
        self.image = None
        self.opts = dict(self.defaults)
        self.stopping = asyncio.Event()  # set when the server stops: ends stalls at once
        self.on_request = None  # on_request(record) once each device request has ended
        self.reset({"image": image, "version": version, "any_version": any_version})

    # -- hooks for the clouds

    def routes(self):
        """[(method, path, handler, endpoint)]; handler(exchange) -> response (a coroutine)."""
        return []

    def setup(self, image, opts):
        """Build the cloud's task/batch state for a new image (or None: no update)."""

    def cloud_state(self):
        return {}

    def set_task_state(self, state):
        raise ControlError("%s has no task to change" % self.cloud)

    def error_answer(self, code, message):
        """The cloud's JSON error answer (used by the `code` fault)."""
        return {"code": code, "message": message}

    def info(self):
        return dict(self.creds)

    def device_config(self, url):
        """A /ota.json for a device of this emulator at `url`, with the credentials it accepts
        under the config's own key names."""
        section, keys = self.DEVICE_CONFIG
        cfg = {"cloud": self.cloud, "server": url}
        if url.startswith("http://"):
            cfg["allow_http"] = True
        else:
            cfg["ca"] = "/certs/ca.der"  # the DER form of the CA that signed --tls-cert
        cfg[section] = {key: self.creds[name] for key, name in keys}
        return cfg

    # -- shared behaviour

    def now(self):
        """The emulator's idea of the Unix time (shifted by /_emu/clock)."""
        return time.time() + self.offset

    def reset(self, body):
        if not isinstance(body, dict):
            raise ControlError("reset takes a JSON object")
        body = dict(body)
        path = body.pop("image", self.image.path if self.image else None)
        version = body.pop("version", self.image.version if self.image else None)
        any_version = body.pop("any_version", self.image.any_version if self.image else False)
        unknown = sorted(set(body) - set(self.OPTIONS))
        if unknown:
            raise ControlError(
                "unknown reset option(s) %s; %s knows: %s"
                % (", ".join(unknown), self.cloud, ", ".join(sorted(self.OPTIONS)))
            )
        opts = dict(self.defaults)
        opts.update(body)
        image = Image(path, version, any_version) if path is not None else None
        self.setup(image, opts)  # validates first: a bad reset leaves everything as it was
        self.image = image
        self.opts = opts
        self.log.clear()
        self.faults.clear()
        self.offset = 0.0
        return self.state()

    def state(self):
        out = {
            "cloud": self.cloud,
            "image": self.image.describe() if self.image else None,
            "options": self.opts,
            "clock_offset_s": self.offset,
            "now": int(self.now()),
            "faults": [f.describe() for f in self.faults],
            "requests": len(self.log),
        }
        out.update(self.cloud_state())
        return out

    def _draw_fault(self, endpoint):
        for fault in self.faults:
            if fault.on == "*" or fault.on == endpoint:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    # -- the aiohttp application

    def app(self):
        app = web.Application()
        control.add_routes(app.router, self)
        add = app.router.add_route
        for method, path, handler, endpoint in self.routes():
            add(method, path, self._device(handler, endpoint))
        add("*", "/{tail:.*}", self._device(self._not_found, None))
        return app

    def _device(self, handler, endpoint):
        async def run(request):
            x = Exchange(request, await request.read(), endpoint)
            self.log.append(x.record)
            try:
                return await serve(x)
            finally:  # also when a stall ends with the client gone (the handler is cancelled)
                if self.on_request is not None:
                    self.on_request(x.record)

        async def serve(x):
            x.fault = self._draw_fault(endpoint)
            kind = x.fault.kind if x.fault else None
            x.record["fault"] = kind
            if kind == "silent":  # read the request, never answer
                await self.hold(x.request)
                return web.Response()
            if kind == "status":  # refused before the cloud looks at it: no state change
                text = "status %d\n" % x.fault.status
                return await self.send(x, x.fault.status, text.encode(), "text/plain")
            if kind == "code":
                return await self.send_json(x, self.error_answer(x.fault.code, "injected fault"))
            return await handler(x)

        return run

    async def _not_found(self, x):
        return await self.send(x, 404, b"not found\n", "text/plain")

    # -- response writers (device side)

    async def send_json(self, x, obj, status=200, headers=None):
        x.record["answer"] = obj
        data = json.dumps(obj, separators=(",", ":")).encode()
        return await self.send(x, status, data, "application/json", headers)

    async def send(self, x, status, data, ctype, headers=None):
        """Answer with Content-Length, cutting the body for a drop or stall fault."""
        x.record["status"] = status
        resp = web.StreamResponse(status=status, headers=headers)
        resp.headers["Content-Type"] = ctype
        resp.content_length = len(data)
        await resp.prepare(x.request)
        fault = x.fault if x.fault is not None and x.fault.kind in _CUT else None
        if fault is None:
            await resp.write(data)
            await resp.write_eof()
            return resp
        # the full Content-Length is announced; only `after` bytes follow
        await resp.write(data[: fault.after])
        if fault.kind == "stall":
            await self.hold(x.request)
        _close(x.request)
        return resp

    async def send_range(self, x, data, rng, headers, ctype="application/octet-stream"):
        """A file answer: 200 and all of it for rng None, else 206 with Content-Range."""
        headers = dict(headers)
        if rng is None:
            return await self.send(x, 200, data, ctype, headers)
        start, end = rng
        headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, len(data))
        return await self.send(x, 206, data[start : end + 1], ctype, headers)

    async def send_close_delimited(self, x, status, data, ctype):
        """A body without Content-Length (nor chunking), ended by closing the connection."""
        x.record["status"] = status
        resp = _CloseDelimited(status=status)
        resp.headers["Content-Type"] = ctype
        resp.force_close()
        await resp.prepare(x.request)
        await resp.write(data)
        await resp.write_eof()
        return resp

    async def hold(self, request):
        """Keep the connection silent until the client goes away (the server then cancels this
        handler: handler_cancellation) or the server stops."""
        await self.stopping.wait()
        _close(request)


def _close(request):
    transport = request.transport
    if transport is not None:
        transport.close()
