# tools/faultproxy.py as a user runs it (its command line: one line per request, errors as
# `faultproxy: message` with exit status 1) and as tests use it from Python. CPython only; the
# agent's side is in test_faultproxy.py.

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))
import faultproxy  # noqa: E402

_NGINX = os.getenv("FOTA_TEST_NGINX")


def _small():
    return (Path(os.environ["FOTA_TEST_FILES"]) / "small.bin").read_bytes()


def _get(url, rng=None):
    req = urllib.request.Request(url, headers={"Range": rng} if rng else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def _cli(*args):
    return subprocess.run(
        [sys.executable, str(TOOLS / "faultproxy.py"), *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_command_line_errors_are_one_line_and_status_1():
    proc = _cli("--upstream", _NGINX, "--mode", "bogus")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("faultproxy: unknown mode 'bogus'")
    proc = _cli("--upstream", "ftp://x", "--listen", "127.0.0.1:0")
    assert proc.returncode == 1 and "faultproxy: --upstream must be an http://" in proc.stderr
    proc = _cli("--upstream", _NGINX, "--mode", "reset-at=soon")
    assert proc.returncode == 1 and "'soon' is not a number" in proc.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = _cli("--upstream", _NGINX, "--listen", "127.0.0.1:%d" % port)
    assert proc.returncode == 1 and "faultproxy: cannot listen on 127.0.0.1" in proc.stderr


def test_command_line_proxy_prints_one_line_per_request():
    cmd = [sys.executable, str(TOOLS / "faultproxy.py"), "--upstream", _NGINX,
           "--listen", "127.0.0.1:0", "--mode", "reset-at=100", "--times", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # the tool prints its address before it serves
        assert first.startswith("faultproxy: http://127.0.0.1:"), first
        base = first.split()[1]
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            _get(base + "/small.bin", "bytes=0-999")
        status, _, body = _get(base + "/small.bin", "bytes=0-999")
        assert status == 206 and body == _small()[:1000]
        lines = [proc.stdout.readline().strip() for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert lines[0] == "#1 GET /small.bin bytes=0-999 -> 206 1000 B: reset at 100 (fault 1 of 1)"
    assert lines[1] == "#2 GET /small.bin bytes=0-999 -> 206 1000 B"


@pytest.fixture
def proxy():
    """A fault proxy of the test's own in front of nginx, passing until the test arms it."""
    with faultproxy.start(_NGINX) as running:
        yield running


def test_python_api_arms_faults_and_keeps_a_log(proxy):
    proxy.arm("status=503", times=1)
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(proxy.url + "/small.bin")
    assert err.value.code == 503
    status, headers, body = _get(proxy.url + "/small.bin")
    assert status == 200 and body == _small() and "ETag" in headers
    assert [(r["status"], r["fault"]) for r in proxy.log] == [(503, "status 503"), (200, None)]
    proxy.arm("chunked")
    status, headers, body = _get(proxy.url + "/small.bin", "bytes=10-19")
    assert headers.get("Transfer-Encoding") == "chunked" and body == _small()[10:20]
    assert len(proxy.log) == 1 and proxy.state()["faults"] == 1
    # the control API the MicroPython tests use
    req = urllib.request.Request(
        proxy.url + "/_proxy", data=json.dumps({"mode": "flip-at=3"}).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp)["mode"] == "flip-at=3"
    body = _get(proxy.url + "/small.bin")[2]
    assert body[3] == _small()[3] ^ 0xFF and body[:3] + body[4:] == _small()[:3] + _small()[4:]
    req = urllib.request.Request(
        proxy.url + "/_proxy", data=json.dumps({"mode": "nope"}).encode(), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400 and "unknown mode" in json.load(err.value)["error"]


def test_stall_ends_when_the_client_gives_up_and_stop_does_not_wait():
    with faultproxy.start(_NGINX, mode="stall-at=10") as proxy:
        with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))) as s:
            s.sendall(b"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(5)
            got = b""
            while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 10:
                got += s.recv(65536)
            s.settimeout(0.2)
            with pytest.raises(TimeoutError):
                s.recv(65536)  # stalled: nothing after the 10th body byte
            assert proxy.log[0]["fault"] == "stalled at 10"
            started = time.monotonic()
            proxy.stop()  # with the client still connected: the stalled answer is ended
            assert time.monotonic() - started < 5
            s.settimeout(5)
            assert s.recv(65536) == b""  # the proxy closed the connection


def test_head_requests_keep_the_upstreams_length():
    with faultproxy.start(_NGINX) as proxy:
        req = urllib.request.Request(proxy.url + "/small.bin", method="HEAD")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Content-Length"] == "10000" and resp.read() == b""


def test_the_demo_survives_faults_between_the_board_and_the_cloud():
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "demo.py"), "--fault", "reset-at=random", "--size", "100000"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    faults = out.split("== the faults the proxy injected\n", 1)[1].split("==", 1)[0]
    assert len(faults.strip().splitlines()) == 2 and faults.count(": reset at ") == 2, faults
    assert "demo: the board runs 2.0.0 and the cloud knows it" in out
