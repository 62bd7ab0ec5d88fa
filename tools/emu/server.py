# tools/emu/server.py: one emulator served by aiohttp in a background thread with its own loop.
#
# The listening socket is bound in the caller's thread, so a taken port or a bad address fails
# at once with EmuError; then the thread runs the app until stop(). stop() first wakes every
# stalled or silent answer (Emulator.stopping), so shutdown never waits on a held connection.
# Handlers are cancelled when their client disconnects (aiohttp's handler_cancellation): that
# is what ends a stall when the client gives up.

import asyncio
import socket
import ssl
import threading

from aiohttp import web

from .records import EmuError

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_SHUTDOWN_GRACE_S = 1.0


class Server:
    """A running emulator: .url, .control, .info() (what the command line prints), .stop()."""

    def __init__(self, emulator, host="127.0.0.1", port=0, tls=None, url_host=None):
        self.emulator = emulator
        self._sock = _listen(host, port)
        self._ssl = None
        if tls is not None:
            cert, key = tls
            try:
                self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                self._ssl.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                self._sock.close()
                raise EmuError("cannot load the TLS certificate or key: %s" % exc) from None
        port = self._sock.getsockname()[1]
        name = url_host or advertised(host)
        if ":" in name:
            name = "[%s]" % name
        self.url = "%s://%s:%d" % ("https" if tls else "http", name, port)
        self.control = self.url + "/_emu"
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._error = None
        self._runner = None
        self._thread = threading.Thread(target=self._run, name="fota-emu", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise EmuError("the %s emulator did not start" % emulator.cloud)
        if self._error is not None:
            raise EmuError("cannot start the %s emulator: %s" % (emulator.cloud, self._error))

    def info(self):
        out = {"cloud": self.emulator.cloud, "url": self.url, "control": self.control}
        out.update(self.emulator.info())
        out["config"] = self.emulator.device_config(self.url)
        return out

    def stop(self):
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(STOP_TIMEOUT_S)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _run(self):
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_quiet)
        try:
            loop.run_until_complete(self._start())
        except Exception as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            self._sock.close()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_until_complete(self._stop.wait())
            self.emulator.stopping.set()
            loop.run_until_complete(self._runner.cleanup())
        finally:
            loop.close()

    async def _start(self):
        self._runner = web.AppRunner(
            self.emulator.app(),
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_GRACE_S,
        )
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, ssl_context=self._ssl).start()


def advertised(host):
    """The address a device uses to reach a server listening on `host`: `host` itself, or for
    a wildcard (0.0.0.0, ::, "") the address of this machine's interface towards the networks
    beyond it (the source address the routing table picks; no packet is sent), else loopback."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    family, probe = (
        (socket.AF_INET6, "2001:db8::1") if host == "::" else (socket.AF_INET, "192.0.2.1")
    )
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 9))
            return sock.getsockname()[0]
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def _listen(host, port):
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise EmuError("cannot make a socket: %s" % exc.strerror) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except (OSError, OverflowError) as exc:
        sock.close()
        why = getattr(exc, "strerror", None) or exc
        raise EmuError("cannot listen on %s port %s: %s" % (host, port, why)) from None
    sock.setblocking(False)
    return sock


def _quiet(loop, context):
    # Clients under test drop connections and refuse certificates on purpose: not our errors.
    exc = context.get("exception")
    if isinstance(exc, (ConnectionError, ssl.SSLError, asyncio.CancelledError)):
        return
    loop.default_exception_handler(context)
