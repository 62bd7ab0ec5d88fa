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
                       other-medium.bin  300,000 other bytes, dated an hour earlier (so
                                   nginx gives it another ETag than medium.bin's)
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
FOTA_TEST_TLS_EXPIRED      https://localhost:PORT  the files, with a certificate for localhost
                           signed by ca.der that expired yesterday
FOTA_TEST_TLS_SELF_SIGNED  https://localhost:PORT  the files, with a self-signed certificate
FOTA_TEST_HTTP       http://127.0.0.1:PORT   the fault-injecting server (net_faultserver.py).
FOTA_TEST_HTTPS      https://localhost:PORT  the same fault-injecting server over TLS (the same
                     certificate as nginx's, signed by ca.der), e.g. a stall or a drop under TLS.
FOTA_TEST_PROXY      http://127.0.0.1:PORT   tools/faultproxy.py in front of FOTA_TEST_NGINX,
                     passing everything until a test arms a fault (POST /_proxy, see the tool)
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

The fault-injecting server's paths are listed in net_faultserver.py.
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from net_certs import make_pki
from net_faultserver import FaultServer
from net_nginx import nginx_servers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import emu  # noqa: E402  (tools/emu: the cloud emulators)
import faultproxy  # noqa: E402  (tools/faultproxy.py)
import nginx  # noqa: E402  (tools/nginx.py: the nginx runner the bench uses too)

FILES = (("empty.bin", 0), ("small.bin", 10_000), ("medium.bin", 300_000), ("large.bin", 1_500_000))
ENV_NAMES = (
    "FOTA_TEST_FILES",
    "FOTA_TEST_NGINX",
    "FOTA_TEST_NGINX_TLS",
    "FOTA_TEST_TLS_EXPIRED",
    "FOTA_TEST_TLS_SELF_SIGNED",
    "FOTA_TEST_HTTP",
    "FOTA_TEST_HTTPS",
    "FOTA_TEST_PROXY",
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

_state = {}


# -- pytest hooks -------------------------------------------------------------------------------


def pytest_configure(config):
    if _state or config.option.help or config.option.version:
        return
    try:
        nginx.binary()  # before anything starts: fail loudly with the fix
    except nginx.NginxError as exc:
        raise pytest.UsageError("the network tests need nginx: %s" % exc) from None
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
    make_pki(files, pki)
    fault = FaultServer(files)
    fault_tls = FaultServer(files, pki)
    _state["fault"] = (fault, fault_tls)
    for server in (fault, fault_tls):
        threading.Thread(target=server.serve_forever, name="fota-fault", daemon=True).start()
    server = nginx.Nginx(nginx_servers(files, pki), nports=4)
    _state["nginx"] = server
    plain, tls, expired, self_signed = server.start()
    os.environ["FOTA_TEST_FILES"] = str(files)
    os.environ["FOTA_TEST_NGINX"] = "http://127.0.0.1:%d" % plain
    os.environ["FOTA_TEST_NGINX_TLS"] = "https://localhost:%d" % tls
    os.environ["FOTA_TEST_TLS_EXPIRED"] = "https://localhost:%d" % expired
    os.environ["FOTA_TEST_TLS_SELF_SIGNED"] = "https://localhost:%d" % self_signed
    os.environ["FOTA_TEST_HTTP"] = fault.base_url
    os.environ["FOTA_TEST_HTTPS"] = fault_tls.base_url
    _state["proxy"] = faultproxy.start(os.environ["FOTA_TEST_NGINX"])
    os.environ["FOTA_TEST_PROXY"] = _state["proxy"].url
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
    proxy = _state.pop("proxy", None)
    if proxy is not None:
        proxy.stop()
    for server in _state.pop("fault", ()):
        server.shutdown()
        server.server_close()
    root = _state.pop("root", None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
    for name in ENV_NAMES:
        os.environ.pop(name, None)


# -- test files ---------------------------------------------------------------------------------


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
    other = files / "other-medium.bin"
    other.write_bytes(_content("other-medium.bin", 300_000))
    stat = other.stat()
    os.utime(other, (stat.st_atime - 3600, stat.st_mtime - 3600))
    (files / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
