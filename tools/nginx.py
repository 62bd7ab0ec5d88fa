"""Debian's nginx in the foreground on 127.0.0.1 with a private config: benches, tests, demos.

    with serve_folder(folder) as base_url:        # "http://127.0.0.1:PORT"
        ...

    server = Nginx(lambda ports: "server { listen 127.0.0.1:%d; ... }" % ports[0], nports=1)
    ports = server.start()  # free ports, retried if another process takes one meanwhile
    server.stop()

Keep-alive and Range exactly as nginx does them. Runs as root with `user root;` so that its
workers can read private temp folders (as nobody they can't). Readiness is a connect to each port,
polled until a deadline.
"""

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

READY_DEADLINE_S = 20.0
STOP_TIMEOUT_S = 10.0

_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    default_type application/octet-stream;
    client_body_temp_path {run}/tmp/body;
    proxy_temp_path {run}/tmp/proxy;
    fastcgi_temp_path {run}/tmp/fastcgi;
    uwsgi_temp_path {run}/tmp/uwsgi;
    scgi_temp_path {run}/tmp/scgi;
    keepalive_timeout 75s;
    keepalive_requests 100000;
{servers}
}}
"""


class NginxError(Exception):
    pass


def binary():
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if Path(candidate).exists():
            return candidate
    from sysdeps import install_command

    raise NginxError("nginx is needed here: run `%s`" % install_command(["nginx"]))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """servers(ports) -> the `server { ... }` blocks for the given list of nports free ports."""

    def __init__(self, servers, nports=1):
        self._servers = servers
        self._nports = nports
        self._proc = None
        self._run = None

    def start(self):
        exe = binary()
        self._run = Path(tempfile.mkdtemp(prefix="fota-nginx-"))
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self._run / "tmp" / name).mkdir(parents=True)
        last_error = ""
        for _attempt in range(3):
            ports = [_free_port() for _ in range(self._nports)]
            conf = self._run / "nginx.conf"
            conf.write_text(_CONF.format(run=self._run, servers=self._servers(ports)))
            log = self._run / "error.log"
            self._proc = subprocess.Popen(
                [exe, "-p", str(self._run), "-c", str(conf), "-e", str(log)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._wait_ready(ports):
                return ports
            self._stop_proc()
            last_error = log.read_text(errors="replace") if log.exists() else ""
        self.stop()
        raise NginxError("nginx did not start: %s" % last_error.strip())

    def _wait_ready(self, ports):
        deadline = time.monotonic() + READY_DEADLINE_S
        pending = list(ports)
        while pending and time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                    pending.pop(0)
            except OSError:
                time.sleep(0.005)  # polling interval, bounded by the deadline
        return not pending

    def _stop_proc(self):
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        if proc.stderr:
            proc.stderr.close()

    def stop(self):
        self._stop_proc()
        if self._run is not None:
            shutil.rmtree(self._run, ignore_errors=True)
            self._run = None


@contextlib.contextmanager
def serve_folder(folder):
    root = Path(folder).resolve()
    server = Nginx(
        lambda ports: "    server { listen 127.0.0.1:%d; root %s; }" % (ports[0], root), 1
    )
    ports = server.start()
    try:
        yield "http://127.0.0.1:%d" % ports[0]
    finally:
        server.stop()
