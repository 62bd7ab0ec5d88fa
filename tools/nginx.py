"""Run Debian's nginx in the foreground on 127.0.0.1 serving one folder, for benches and demos.

    with serve_folder(folder) as base_url:   # "http://127.0.0.1:PORT"
        ...

Keep-alive and Range exactly as nginx does them. Runs as root with `user root;` so that its
workers can read private temp folders (toolchain-notes). Waits for the port with a deadline.
"""

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

APT_HINT = "nginx is needed here: run `apt-get install -y nginx`"

_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        default_type application/octet-stream;
    }}
}}
"""


class NginxError(Exception):
    pass


def binary():
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if not found:
        raise NginxError(APT_HINT)
    return found


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_folder(folder, deadline_s=10.0):
    exe = binary()
    with tempfile.TemporaryDirectory(prefix="fota-nginx-") as run:
        port = _free_port()
        conf = Path(run) / "nginx.conf"
        conf.write_text(_CONF.format(run=run, port=port, root=Path(folder).resolve()))
        proc = subprocess.Popen(
            [exe, "-c", str(conf), "-p", run],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            end = time.monotonic() + deadline_s
            while True:
                if proc.poll() is not None:
                    raise NginxError("nginx exited: " + proc.stderr.read().decode(errors="replace"))
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > end:
                        raise NginxError("nginx did not listen on port %d" % port) from None
                    time.sleep(0.02)  # polling a port, bounded by the deadline above
            yield "http://127.0.0.1:%d" % port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
