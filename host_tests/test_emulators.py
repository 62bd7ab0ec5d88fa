# The cloud emulators (tools/emulator.py, tools/emu/) on CPython: auth vectors of
# protocols.md, OneNET's Range rules (seed 001 section 4), the task and batch state machines,
# every fault kind (also over TLS), the request log, the control API and the command line.
# Clients are http.client and raw sockets, so the agent's own client is not what is tested.

import hashlib
import http.client
import json
import os
import re
import selectors
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import emu  # noqa: E402
from emu import onenet_token, ranges, sagoo  # noqa: E402

KEY = "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw="  # the docs' sample key
DEV_KEY = "iLItnGVvZyXkvDxWDTDnG1x4qENBpu6/gbQ7LDx+XAo="  # the emulator's default device key
DEV = "dev_id=522747162"
IMAGE = bytes((i * 7 + 3) % 251 for i in range(5000))
N = len(IMAGE)
TIMEOUT = 5
QUIET_S = 0.3  # how long "nothing more arrives" is watched for


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("emu") / "fw-2.0.0.bin"
    path.write_bytes(IMAGE)
    return str(path)


@pytest.fixture(scope="module")
def onenet(image_path):
    with emu.start("onenet", image=image_path, version="2.0.0") as server:
        yield Api(server.url, image_path)


@pytest.fixture(scope="module")
def fuse(image_path):
    with emu.start("onenet-fuse", image=image_path, version="2.0.0") as server:
        yield Api(server.url, image_path)


@pytest.fixture(scope="module")
def sag(image_path):
    with emu.start("sagoo", image=image_path, version="2.0.0") as server:
        yield Api(server.url, image_path)


def _ca_context():
    ca = (Path(os.environ["FOTA_TEST_FILES"]) / "ca.der").read_bytes()
    return ssl.create_default_context(cadata=ca)


class Api:
    """Plain requests to one emulator (http.client, one connection per request)."""

    def __init__(self, url, image=None):
        self.url = url
        self.image = image  # what reset() serves unless told otherwise
        parts = urlsplit(url)
        self.host, self.port, self.tls = parts.hostname, parts.port, parts.scheme == "https"

    def connection(self):
        if self.tls:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=TIMEOUT, context=_ca_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)

    def request(self, method, path, body=None, headers=None):
        """-> (status, {lowercase header: value}, body bytes)."""
        conn = self.connection()
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, _, data = self.request(method, path, body, headers)
        assert status == 200, (status, data)
        return json.loads(data)

    def ctl(self, name, body=None):
        if body is None:
            return self.json("GET", "/_emu/" + name)
        return self.json("POST", "/_emu/" + name, body)

    def reset(self, **options):
        """Reset with this Api's image as version 2.0.0 unless options say otherwise."""
        body = {"image": self.image, "version": "2.0.0"}
        body.update(options)
        return self.ctl("reset", body)

    def ctl_error(self, name, body):
        status, _, data = self.request("POST", "/_emu/" + name, body)
        assert status == 400, (status, data)
        return json.loads(data)["error"]

    def raw(self, request):
        """Send request bytes on a fresh (TLS) socket; -> the socket."""
        sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        if self.tls:
            sock = _ca_context().wrap_socket(sock, server_hostname=self.host)
        sock.sendall(request)
        return sock


def read_head(sock, want_body):
    """Read the head and at least want_body body bytes: -> (head text, body bytes)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < want_body:
        piece = sock.recv(65536)
        assert piece, "closed early: %r" % data[:300]
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1").lower(), body


def read_to_close(sock):
    data = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece


def assert_quiet(sock):
    """Nothing more arrives, and the connection stays open, for QUIET_S."""
    sock.settimeout(QUIET_S)
    with pytest.raises(TimeoutError):
        sock.recv(1)


def token(res="products/123123", key=KEY, method="sha1", version="2018-10-31", et=None):
    et = int(time.time()) + 30 * 24 * 3600 if et is None else et  # outlives clock shifts
    return {"Authorization": onenet_token.make(key, res, et, method, version)}


def check(api, version="1.0.0", type_=1, cdn="false", manuf=101, model=10101, auth=None):
    path = "/ota/south/check?%s&manuf=%s&model=%s&type=%s&version=%s&cdn=%s" % (
        DEV,
        manuf,
        model,
        type_,
        version,
        cdn,
    )
    return api.json("GET", path, headers=auth or token())


def progress(api, tok, step):
    path = "/ota/south/device/download/%s/progress?%s" % (tok, DEV)
    return api.json("POST", path, {"step": step}, token())["errno"]


def token_check(api, tok):
    return api.json("GET", "/ota/south/download/%s/check?%s" % (tok, DEV), headers=token())


def task(api):
    return api.ctl("state")["task"]


def started(api, **options):
    """Reset with the image, check: -> the task token."""
    api.reset(**options)
    answer = check(api)
    assert answer["errno"] == 0, answer
    return answer["data"]["token"]


# -- OneNET token -------------------------------------------------------------------------------


def test_onenet_token_vectors_of_protocols_md():
    sign = onenet_token.sign
    assert sign(KEY, "products/123123", 1537255523, "sha1") == "lsaPSiiGvEFFjXu5WU7a6IkScqE="
    assert sign(KEY, "products/123123", 1537255523, "md5") == "M3jB6jcSNUuGcvW3dFcrWA=="
    assert (
        sign(KEY, "products/123123", 1537255523, "sha256")
        == "tuFMd8Cc5krZO+RiNaW4mad5tauSFq2J89Gd70MXQPI="
    )
    device = sign(KEY, "products/123123/devices/mydev", 1537255523, "sha1")
    assert device == "p2Bv5QYrZolQCtt68923gtxRCVk="
    user = sign(KEY, "userid/12321", 1537255523, "sha1", "2022-05-01")
    assert user == "EWI3xcVT+9vvnk/WOel6VYmSU4I="
    assert onenet_token.make(KEY, "products/123123", 1537255523) == (
        "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1"
        "&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D"
    )


def test_onenet_accepts_the_vectors_and_rejects_bad_or_expired_tokens(image_path):
    vectors = [
        "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1"
        "&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D",
        # un-encoded, as the legacy doc examples send it
        "version=2018-10-31&res=products/123123&et=1537255523&method=sha1"
        "&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE=",
        "version=2018-10-31&res=products%2F123123&et=1537255523&method=md5"
        "&sign=M3jB6jcSNUuGcvW3dFcrWA%3D%3D",
        "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha256"
        "&sign=tuFMd8Cc5krZO%2BRiNaW4mad5tauSFq2J89Gd70MXQPI%3D",
        "version=2018-10-31&res=products%2F123123%2Fdevices%2Fmydev&et=1537255523&method=sha1"
        "&sign=p2Bv5QYrZolQCtt68923gtxRCVk%3D",
    ]
    with emu.start("onenet", image=image_path, version="2.0.0", device_key=KEY) as server:
        api = Api(server.url)
        api.ctl("clock", {"offset_s": 1537255523 - 60 - time.time()})  # before et
        for header in vectors:
            answer = api.json(
                "GET", "/ota/device/version?" + DEV, headers={"Authorization": header}
            )
            assert answer["errno"] == 0, (header, answer)
        bad = vectors[0].replace("lsaP", "lsaQ")
        answer = api.json("GET", "/ota/device/version?" + DEV, headers={"Authorization": bad})
        assert answer["errno"] == 1 and "mismatch" in answer["error"]
        api.ctl("clock", {"offset_s": 0})  # now et < now
        answer = api.json(
            "GET", "/ota/device/version?" + DEV, headers={"Authorization": vectors[0]}
        )
        assert answer["errno"] == 1 and "expired" in answer["error"]
        for headers in ({}, token(version="2022-05-01"), token(res="userid/12321")):
            answer = api.json("GET", "/ota/device/version?" + DEV, headers=headers)
            assert answer["errno"] == 1, (headers, answer)


def test_fuse_token_versions_and_levels(fuse):
    fuse.reset()
    path = "/fuse-ota/123123/mydev/version"
    device = "products/123123/devices/mydev"
    for headers in (
        token(version="2022-05-01", res=device, key=DEV_KEY),
        token(version="2018-10-31", res=device, key=DEV_KEY, method="md5"),
        token(version="2022-05-01"),
        token(method="sha256"),
    ):
        assert fuse.json("GET", path, headers=headers)["code"] == 0, headers
    assert fuse.json("GET", path, headers=token(key=DEV_KEY))["code"] == 1  # wrong key
    assert fuse.json("GET", path, headers=token(et=int(time.time()) - 5))["code"] == 1
    assert fuse.json("GET", "/fuse-ota/9/mydev/version", headers=token())["code"] == 1
    fuse.reset(product_token=False)
    assert fuse.json("GET", path, headers=token())["code"] == 1
    assert fuse.json("GET", path, headers=token(res=device, key=DEV_KEY))["code"] == 0


# -- OneNET Range rules (seed 001 section 4) ----------------------------------------------------

RANGES = [
    (None, None),
    ("bytes=0-5", (0, 5)),  # the seed's example
    ("bytes=0-", (0, N - 1)),  # rule 1: all data
    ("bytes=2-", (2, N - 1)),  # rule 1: from the 3rd byte
    ("bytes=%d-" % N, (0, N - 1)),  # rule 1: start >= len -> start = 0
    ("bytes=%d-" % (N + 7), (0, N - 1)),
    ("bytes=0-99", (0, 99)),  # rule 2: the first 100 bytes
    ("bytes=10-%d" % N, (10, N - 1)),  # rule 2: end >= len -> end = len - 1
    ("bytes=10-%d" % (N * 3), (10, N - 1)),
    ("bytes=50-20", (0, 20)),  # rule 2: start > end -> start = 0
    ("bytes=%d-%d" % (N + 5, N + 9), (0, N - 1)),  # both clamps
    ("bytes=-100", (N - 100, N - 1)),  # rule 3: the last 100 bytes
    ("bytes=-%d" % N, (0, N - 1)),
    ("bytes=-%d" % (N + 1), (0, N - 1)),  # -n with n > len -> the whole file
    ("bytes=01-02", (1, 2)),  # `01-02` read as 1-2
    ("01-02", (1, 2)),  # the bare form of the API page
    ("100-199", (100, 199)),
    ("7-", (7, N - 1)),
    ("bytes=abc", None),  # malformed -> the whole file
    ("bytes=1-2,5-6", None),
    ("bytes=-", None),
    ("items=1-2", None),
    ("bytes=-0", None),
]


@pytest.mark.parametrize("header,want", RANGES)
def test_onenet_range_rules(onenet, header, want):
    tok = started(onenet)
    headers = {"Range": header} if header is not None else {}
    status, head, body = onenet.request("GET", "/ota/south/download/" + tok, headers=headers)
    assert head["content-disposition"] == 'attachment; filename="fw-2.0.0.bin"'
    assert head["content-length"] == str(len(body))
    if want is None:
        assert status == 200 and body == IMAGE and "content-range" not in head
    else:
        start, end = want
        assert status == 206
        assert head["content-range"] == "bytes %d-%d/%d" % (start, end, N)
        assert body == IMAGE[start : end + 1]
    assert onenet.ctl("log")[-1]["range"] == header


def test_range_parsers_edge_cases():
    assert ranges.onenet("bytes=0-5", 0) is None  # an empty file is always whole
    assert ranges.rfc7233("bytes=0-5", 0) == ranges.UNSATISFIABLE
    assert ranges.rfc7233("bytes=5-", 10) == (5, 9)
    assert ranges.rfc7233("bytes=-3", 10) == (7, 9)
    assert ranges.rfc7233("bytes=-30", 10) == (0, 9)
    assert ranges.rfc7233("bytes=3-1", 10) is None
    assert ranges.rfc7233("3-5", 10) is None
    assert ranges.rfc7233("bytes=10-", 10) == ranges.UNSATISFIABLE


def test_onenet_bad_token_is_a_close_delimited_error_byte(onenet):
    onenet.reset()
    sock = onenet.raw(
        b"GET /ota/south/download/ota_nosuchtoken00000000 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with sock:
        data = read_to_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    head = head.decode().lower()
    assert head.startswith("http/1.1 200")
    assert "content-length" not in head and "transfer-encoding" not in head
    assert body == b"3"


def test_fuse_download_ranges_and_ota_errno(fuse):
    fuse.reset()
    tid = fuse.json("GET", "/fuse-ota/123123/mydev/check?type=1&version=1.0", headers=token())
    url = "/fuse-ota/123123/mydev/%d/download" % tid["data"]["tid"]
    for header, want in (("bytes=0-5", (0, 5)), ("01-02", (1, 2)), ("bytes=-%d" % (N + 1), None)):
        status, head, body = fuse.request("GET", url, headers=dict(token(), Range=header))
        assert head["ota-errno"] == "0"
        start, end = want or (0, N - 1)
        assert status == 206 and head["content-range"] == "bytes %d-%d/%d" % (start, end, N)
        assert body == IMAGE[start : end + 1]
    status, head, body = fuse.request("GET", url, headers=token())
    assert status == 200 and head["ota-errno"] == "0" and body == IMAGE
    assert head["content-disposition"] == 'attachment; filename="fw-2.0.0.bin"'


# -- OneNET legacy: check, task state machine ---------------------------------------------------


def test_onenet_check_answer_and_errnos(onenet):
    onenet.reset(signal=10, power=50)
    answer = check(onenet)
    assert answer["errno"] == 0 and answer["error"] == "succ"
    data = answer["data"]
    assert re.fullmatch(r"ota_[A-Za-z0-9]{20}", data["token"])
    md5 = hashlib.md5(IMAGE).hexdigest()
    assert data == {
        "target": "2.0.0",
        "token": data["token"],
        "size": N,
        "md5": md5,
        "signal": 10,
        "power": 50,
        "retry": 3,
        "interval": 10,
        "type": 1,
    }
    assert check(onenet, cdn="true")["data"]["ipPort"] == "127.0.0.1:%d" % onenet.port
    assert check(onenet, auth=token(key=DEV_KEY))["errno"] == 1
    other = "/ota/south/check?dev_id=1&manuf=101&model=10101&type=1&version=1&cdn=false"
    assert onenet.json("GET", other, headers=token())["errno"] == 1
    missing = "/ota/south/check?%s&manuf=101&model=10101&type=1&version=1" % DEV
    assert onenet.json("GET", missing, headers=token())["errno"] == 2
    assert check(onenet, type_=3)["errno"] == 2
    assert check(onenet, version="v" * 21)["errno"] == 27
    assert check(onenet, version="1.0%2B1")["errno"] == 27
    assert check(onenet, type_=2)["errno"] == 11  # the task is FOTA (type 1)
    assert check(onenet, manuf=102, model=10201)["errno"] == 8
    assert task(onenet)["state"] == "failed"
    assert check(onenet)["errno"] == 11  # a failed task is no task
    onenet.reset(package_type=2, diff_from="1.0.0", type=2)
    assert check(onenet, type_=2, version="1.0.0")["data"]["type"] == 2
    assert check(onenet, type_=2, version="1.1.0")["errno"] == 9
    assert task(onenet)["state"] == "failed"
    onenet.reset(image=None)
    assert check(onenet)["errno"] == 11


def test_onenet_state_machine_success(onenet):
    tok = started(onenet)
    assert progress(onenet, tok, 54) == 17  # 0..100 only while downloading (seed rule 1, 3)
    assert token_check(onenet, tok)["errno"] == 0
    assert task(onenet)["state"] == "downloading"
    assert progress(onenet, tok, 54) == 0
    assert progress(onenet, tok, 100) == 0  # seed rule 2: 100 -> upgrading
    assert task(onenet)["state"] == "upgrading"
    assert progress(onenet, tok, 60) == 17
    assert progress(onenet, tok, 101) == 17  # in upgrading only 2xx
    assert token_check(onenet, tok)["errno"] == 17
    assert progress(onenet, tok, 201) == 0
    state = onenet.ctl("state")
    assert state["task"]["state"] == "completed" and state["device"] == {"f_version": "2.0.0"}
    assert state["task"]["last_step"] == 100 and state["task"]["last_result"] == 201
    answer = onenet.json(
        "POST", "/ota/south/device/download/%s/progress?%s" % (tok, DEV), {"step": 201}, token()
    )
    assert answer == {"errno": 20, "error": "task finish"}
    assert token_check(onenet, tok)["errno"] == 20
    assert check(onenet)["errno"] == 11


@pytest.mark.parametrize("code", [102, 103, 104, 105, 106, 107])
def test_onenet_download_failures_fail_the_task(onenet, code):
    tok = started(onenet)
    token_check(onenet, tok)
    assert progress(onenet, tok, code) == 0
    assert task(onenet)["state"] == "failed"
    assert progress(onenet, tok, 201) == 20


@pytest.mark.parametrize("code", [202, 203, 204, 205, 206, 207, 208])
def test_onenet_upgrade_failures_fail_the_task(onenet, code):
    tok = started(onenet)
    assert progress(onenet, tok, 101) == 0  # codes > 100 are accepted in pending
    assert task(onenet)["state"] == "upgrading"
    assert progress(onenet, tok, code) == 0
    assert task(onenet)["state"] == "failed"


def test_onenet_cancelled_paused_and_unknown_codes(onenet):
    tok = started(onenet)
    assert progress(onenet, tok, 150) == 2
    assert progress(onenet, tok, -1) == 2
    path = "/ota/south/device/download/%s/progress?%s" % (tok, DEV)
    assert onenet.json("POST", path, {"step": "5"}, token())["errno"] == 2
    assert progress(onenet, "ota_unknown", 5) == 4
    onenet.ctl("task", {"state": "paused"})
    assert progress(onenet, tok, 101) == 17
    assert token_check(onenet, tok)["errno"] == 17
    onenet.ctl("task", {"state": "cancelled"})
    assert progress(onenet, tok, 201) == 22
    assert progress(onenet, tok, 50) == 17
    assert token_check(onenet, tok)["errno"] == 22
    status, _, body = onenet.request("GET", "/ota/south/download/" + tok)
    assert (status, body) == (200, b"3")
    assert onenet.ctl_error("task", {"state": "gone"}).startswith("task state must be")


def test_onenet_version_report_completes_the_task(onenet):
    tok = started(onenet, s_version="0.9")
    path = "/ota/device/version?" + DEV
    assert onenet.json("GET", path, headers=token())["data"] == {"s_version": "0.9"}
    assert onenet.json("POST", path, {"s_version": "V1.3"}, token())["errno"] == 0  # the seed's
    assert onenet.json("POST", path, {"f_version": "1.0.0-rc_1"}, token())["errno"] == 0
    assert task(onenet)["state"] == "pending"
    assert onenet.json("POST", path, {"f_version": "x" * 21}, token())["errno"] == 27
    assert onenet.json("POST", path, {"f_version": "1 0"}, token())["errno"] == 27
    assert onenet.json("POST", path, {"f_version": "2.0.0"}, token())["errno"] == 0
    state = onenet.ctl("state")
    assert state["task"]["state"] == "completed"
    assert state["device"] == {"f_version": "2.0.0", "s_version": "V1.3"}
    assert token_check(onenet, tok)["errno"] == 20


def test_onenet_token_lives_two_days(onenet):
    tok = started(onenet)
    onenet.ctl("clock", {"offset_s": 2 * 24 * 3600 + 10})
    assert token_check(onenet, tok)["errno"] == 12
    assert progress(onenet, tok, 10) == 12
    assert onenet.request("GET", "/ota/south/download/" + tok)[2] == b"3"
    fresh = check(onenet)["data"]["token"]
    assert fresh != tok
    assert token_check(onenet, tok)["errno"] == 12
    assert token_check(onenet, fresh)["errno"] == 0
    assert onenet.request("GET", "/ota/south/download/" + fresh)[2] == IMAGE


def test_onenet_report_and_tasking(onenet):
    tok = started(onenet)

    def report(result, tok=tok):
        path = "/ota/south/report?%s&token=%s" % (DEV, tok)
        return onenet.json("POST", path, {"result": result}, token())["errno"]

    assert report(54) == 2
    assert report("x") == 24
    assert report(101, tok="ota_unknown") == 1
    assert report(101) == 0
    assert report(102) == 21  # in upgrading only 2xx: invalid operation here
    assert report(201) == 0
    assert report(201) == 20
    started(onenet)
    onenet.ctl("task", {"state": "cancelled"})
    assert report(201, tok=task(onenet)["token"]) == 22

    started(onenet)
    answer = onenet.json("GET", "/ota/south/tasking?%s&type=1&cdn=false" % DEV, headers=token())
    assert answer["errno"] == 0 and answer["data"]["token"] == task(onenet)["token"]
    tasking = "/ota/south/tasking?%s&type=%s&cdn=false"
    assert onenet.json("GET", tasking % (DEV, 3), headers=token())["errno"] == 2
    assert onenet.json("GET", tasking % (DEV, 2), headers=token())["errno"] == 4


# -- OneNET fuse --------------------------------------------------------------------------------

FUSE = "/fuse-ota/123123/mydev/"


def test_fuse_flow_and_state_machine(fuse):
    fuse.reset()
    answer = fuse.json("GET", FUSE + "check?type=1&version=1.0.0", headers=token())
    assert re.fullmatch(r"[0-9a-f]{32}", answer.pop("request_id"))
    tid = answer["data"]["tid"]
    assert answer == {
        "code": 0,
        "msg": "succ",
        "data": {
            "target": "2.0.0",
            "tid": tid,
            "size": N,
            "md5": hashlib.md5(IMAGE).hexdigest(),
            "status": 1,
            "type": 1,
        },
    }
    base = FUSE + "%d/" % tid

    def status(step):
        answer = fuse.json("POST", base + "status", {"step": step}, token())
        answer.pop("request_id")
        return answer

    assert fuse.json("GET", base + "check", headers=token())["data"] == {"status": 1}
    assert fuse.request("GET", base + "download", headers=token())[2] == IMAGE
    assert fuse.json("GET", base + "check", headers=token())["data"] == {"status": 2}
    assert status(50) == {"code": 0, "msg": "succ"}
    assert status(100)["code"] == 0
    assert fuse.json("GET", base + "check", headers=token())["data"] == {"status": 3}
    assert status(50)["code"] == 17
    assert status(201)["code"] == 0
    assert fuse.json("GET", base + "check", headers=token())["data"] == {"status": 4}
    assert status(201) == {"code": 20, "msg": "task finish"}
    versions = fuse.json("GET", FUSE + "version", headers=token())
    assert versions["data"] == {"f_version": "2.0.0"}
    assert fuse.json("GET", FUSE + "999/check", headers=token())["code"] == 4


def test_fuse_no_task_pending_step_cancel_and_versions(fuse):
    fuse.reset(image=None)
    answer = fuse.json("GET", FUSE + "check?type=1&version=1.0.0", headers=token())
    assert answer["code"] == 11 and "data" not in answer
    assert fuse.json("GET", FUSE + "check?type=5&version=1", headers=token())["code"] == 2
    assert fuse.json("GET", FUSE + "check?type=1&version=a%20b", headers=token())["code"] == 27
    tid = fuse.reset()["task"]["tid"]
    path = FUSE + "%d/status" % tid
    assert fuse.json("POST", path, {"step": 10}, token())["code"] == 0  # starts the task
    assert task(fuse)["state"] == "downloading"
    fuse.ctl("task", {"state": "cancelled"})
    assert fuse.json("POST", path, {"step": 201}, token())["code"] == 22
    assert fuse.json("GET", FUSE + "%d/check" % tid, headers=token())["data"] == {"status": 6}
    fuse.reset()
    version = fuse.json(
        "POST", FUSE + "version", {"s_version": "1.1", "f_version": "2.0.0"}, token()
    )
    assert version["code"] == 0 and version["msg"] == "succ"
    assert task(fuse)["state"] == "completed"


def test_fuse_refused_downloads_say_so_in_ota_errno(fuse):
    tid = fuse.reset()["task"]["tid"]
    cases = [
        ("%d/download" % tid, {}, 6),  # no token
        ("%d/download" % tid, token(key=DEV_KEY), 6),
        ("77/download", token(), 2),
    ]
    for path, headers, errno in cases:
        status, head, body = fuse.request("GET", FUSE + path, headers=headers)
        assert (status, head["ota-errno"]) == (200, str(errno)), path
        assert json.loads(body)["code"] == errno
    status, head, _ = fuse.request("GET", "/fuse-ota/123123/other/%d/download" % tid)
    assert (status, head["ota-errno"]) == (200, "1")
    fuse.ctl("task", {"state": "completed"})
    status, head, _ = fuse.request("GET", FUSE + "%d/download" % tid, headers=token())
    assert (status, head["ota-errno"]) == (200, "5")


# -- Sagoo --------------------------------------------------------------------------------------


def sagoo_query(time_="1703834918", sign=None, ak="iotak", sk="iotsk20200907", app="fota"):
    sign = sign or sagoo.sign(sk, ak, time_)
    return "ak=%s&time=%s&sign=%s&appId=%s" % (ak, time_, sign, app)


def info(api, version="1.0.0", module="default", query=None, key="dev001", prefix="/base-api"):
    path = "%s/openapi/v1/ota/get_ota_info?%s&deviceKey=%s&version=%s&module=%s" % (
        prefix,
        query or sagoo_query(),
        key,
        version,
        module,
    )
    return api.json("GET", path)


def write(api, body, query=None):
    path = "/base-api/openapi/v1/ota/write_ota_info?" + (query or sagoo_query())
    return api.json("POST", path, body)


def test_sagoo_sign_vectors_of_protocols_md():
    assert (
        sagoo.sign("iotsk20200907", "iotak", "1703834918")
        == "90cfbaabe282e97228115f3684be4e6b626418cf2de18254d4fa0308a08d2044"
    )
    assert (
        sagoo.sign("asfwerttytyrtyewrwerfasdfsfsfsf2", "aadfsdfsa", "1640494526")
        == "297a96cdd35b05a6c399a6bcf392d9078e28581d8daea62a0ded8c13fe1df44a"
    )


def test_sagoo_auth(sag, image_path):
    sag.reset()
    vector = "90cfbaabe282e97228115f3684be4e6b626418cf2de18254d4fa0308a08d2044"
    assert info(sag, query=sagoo_query(sign=vector))["code"] == 0  # no time window by default
    for query in (
        sagoo_query(sign=vector.replace("90c", "91c")),
        sagoo_query(sign=vector.upper()),
        sagoo_query(app="other"),
        sagoo_query(time_="12x"),
        "ak=iotak&time=1703834918&sign=" + vector,  # no appId
    ):
        answer = info(sag, query=query)
        assert answer["code"] == 61 and "data" not in answer, query
    sag.reset(max_skew_s=300)
    assert info(sag)["code"] == 61
    assert info(sag, query=sagoo_query(time_=str(int(time.time()))))["code"] == 0
    sag.ctl("clock", {"offset_s": 1703834918 + 100 - time.time()})
    assert info(sag)["code"] == 0
    creds = {"ak": "aadfsdfsa", "sk": "asfwerttytyrtyewrwerfasdfsfsfsf2"}
    with emu.start("sagoo", image=image_path, version="2.0.0", **creds) as server:
        query = sagoo_query("1640494526", ak=creds["ak"], sk=creds["sk"])
        assert "297a96cdd35b05a6c399a6bcf392d9078e28581d8daea62a0ded8c13fe1df44a" in query
        assert info(Api(server.url), query=query, prefix="")["code"] == 0


def test_sagoo_get_ota_info(sag):
    sag.reset()
    answer = info(sag)
    data = answer["data"]
    assert answer["code"] == 0 and answer["message"] == ""
    assert data == {
        "url": "%s/sagoo-files/1/fw-2.0.0.bin" % sag.url,
        "version": "2.0.0",
        "module": "default",
        "sign": hashlib.md5(IMAGE).hexdigest(),
        "signMethod": "MD5",
        "extData": {"strategy": 1},
    }
    sag.reset(sign_method="sha256", strategy=25, module="app", size=True)
    data = info(sag, module="app")["data"]
    assert data["sign"] == hashlib.sha256(IMAGE).hexdigest() and data["signMethod"] == "sha256"
    assert data["extData"] == {"strategy": 25} and data["size"] == N
    assert info(sag)["data"] is None  # another module: no update
    sag.reset(omit_default_module=True)
    assert "module" not in info(sag)["data"]
    assert info(sag, module="")["code"] == 54
    assert info(sag, key="dev002")["code"] == 65
    assert sag.ctl("state")["reported"] == {"default": "1.0.0"}
    assert sag.ctl_error("reset", {"sign_method": "crc32"}).startswith("sign_method")


def test_sagoo_file_url_serves_rfc7233_ranges(sag):
    sag.reset()
    url = urlsplit(info(sag)["data"]["url"]).path
    status, head, body = sag.request("GET", url, headers={"Range": "bytes=10-19"})
    assert (status, head["content-range"], body) == (206, "bytes 10-19/%d" % N, IMAGE[10:20])
    status, head, body = sag.request("GET", url, headers={"Range": "bytes=%d-" % N})
    assert (status, head["content-range"]) == (416, "bytes */%d" % N)
    status, head, body = sag.request("GET", url, headers={"Range": "10-19"})
    assert (status, body) == (200, IMAGE)
    assert sag.request("GET", "/sagoo-files/2/fw-2.0.0.bin")[0] == 404


def test_sagoo_batch_state_machine(sag):
    sag.reset()

    def params(step, strategy="1", key="dev001"):
        return {"params": {"deviceKey": key, "step": step, "strategy": strategy}}

    assert write(sag, params("10")) == {"code": 0, "message": ""}
    assert sag.ctl("state")["batch"]["state"] == "downloading"
    flat = {"deviceKey": "dev001", "step": "50", "desc": "", "module": "default", "strategy": 1}
    assert write(sag, flat)["code"] == 0
    for bad in (params(50), params("0"), params("101"), params("-5"), params("5", "2")):
        assert write(sag, bad)["code"] == 53, bad
    assert write(sag, {"params": {"deviceKey": "dev001", "strategy": "1"}})["code"] == 54
    assert write(sag, params("5", key="nobody"))["code"] == 65
    assert write(sag, params("5"), query=sagoo_query(sign="0" * 64))["code"] == 61
    assert write(sag, params("100"))["code"] == 0
    assert sag.ctl("state")["batch"]["state"] == "downloaded"
    assert info(sag, version="2.0.0")["data"] is None  # the new version: completed
    batch = sag.ctl("state")["batch"]
    assert batch["state"] == "completed" and batch["last_step"] == "100"
    assert write(sag, params("100"))["code"] == 300
    sag.reset()
    assert write(sag, params("-3"))["code"] == 0
    assert sag.ctl("state")["batch"]["state"] == "failed"
    assert info(sag)["data"] is None
    sag.reset(wrapped_only=True)
    assert write(sag, flat)["code"] == 54
    sag.reset(flat_body_only=True)
    assert write(sag, params("5"))["code"] == 53
    assert write(sag, flat)["code"] == 0


# -- faults -------------------------------------------------------------------------------------


def test_fault_drop(onenet):
    tok = started(onenet)
    onenet.ctl("fault", {"kind": "drop", "after": 100})
    conn = onenet.connection()
    conn.request("GET", "/ota/south/download/" + tok)
    resp = conn.getresponse()
    assert resp.getheader("Content-Length") == str(N)
    with pytest.raises(http.client.IncompleteRead) as info_:
        resp.read()
    assert len(info_.value.partial) == 100
    conn.close()
    assert onenet.request("GET", "/ota/south/download/" + tok)[2] == IMAGE  # times: 1
    log = onenet.ctl("log")
    assert [r["fault"] for r in log[-2:]] == ["drop", None]


def test_fault_stall_holds_one_connection_only(onenet, image_path):
    tok = started(onenet)
    onenet.ctl("fault", {"kind": "stall", "after": 10})
    request = b"GET /ota/south/download/%s HTTP/1.1\r\nHost: x\r\n\r\n" % tok.encode()
    with onenet.raw(request) as sock:
        head, body = read_head(sock, 10)
        assert "content-length: %d" % N in head and body == IMAGE[:10]
        assert check(onenet)["errno"] == 0  # other requests go on meanwhile
        assert_quiet(sock)
    assert onenet.ctl("log")[-2]["fault"] == "stall"
    # a stall does not hold up the server's shutdown
    with emu.start("onenet", image=image_path, version="2.0.0") as server:
        api = Api(server.url)
        api.ctl("fault", {"kind": "stall", "after": 0, "on": "*"})
        with api.raw(
            b"GET /ota/device/version?%s HTTP/1.1\r\nHost: x\r\n\r\n" % DEV.encode()
        ) as sock:
            read_head(sock, 0)
            t0 = time.monotonic()
            server.stop()
            assert time.monotonic() - t0 < 3
            assert read_to_close(sock) == b""


def test_fault_silent_and_status(onenet):
    tok = started(onenet)
    onenet.ctl("fault", {"kind": "silent", "on": "check"})
    path = "/ota/south/check?%s&manuf=101&model=10101&type=1&version=1&cdn=false" % DEV
    request = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()
    with onenet.raw(request) as sock:
        assert_quiet(sock)
    onenet.ctl("fault", {"kind": "status", "status": 503, "on": "token_check", "times": 2})
    for _ in range(2):
        status, _, body = onenet.request("GET", "/ota/south/download/%s/check?%s" % (tok, DEV))
        assert (status, body) == (503, b"status 503\n")
    assert task(onenet)["state"] == "pending"  # refused before the cloud looked at it
    assert token_check(onenet, tok)["errno"] == 0
    log = onenet.ctl("log")
    assert [(r["fault"], r["status"]) for r in log[-4:]] == [
        ("silent", None),
        ("status", 503),
        ("status", 503),
        (None, 200),
    ]


def test_fault_code_and_wrong_digest(onenet, fuse, sag):
    started(onenet)
    onenet.ctl("fault", {"kind": "code", "code": 7})
    assert check(onenet) == {"errno": 7, "error": "injected fault"}
    onenet.ctl("fault", {"kind": "wrong_digest"})
    md5 = hashlib.md5(IMAGE).hexdigest()
    wrong = check(onenet)["data"]["md5"]
    assert wrong != md5 and len(wrong) == 32
    assert check(onenet)["data"]["md5"] == md5
    fuse.reset()
    fuse.ctl("fault", {"kind": "wrong_digest"})
    data = fuse.json("GET", FUSE + "check?type=1&version=1", headers=token())["data"]
    assert data["md5"] != md5
    fuse.ctl("fault", {"kind": "code", "code": 12012})
    assert fuse.json("GET", FUSE + "check?type=1&version=1", headers=token())["code"] == 12012
    sag.reset()
    sag.ctl("fault", {"kind": "wrong_digest"})
    assert info(sag)["data"]["sign"] not in (md5, None)
    sag.ctl("fault", {"kind": "code", "code": 50, "on": "progress"})
    assert write(sag, {"params": {"deviceKey": "dev001", "step": "1", "strategy": "1"}}) == {
        "code": 50,
        "message": "injected fault",
    }


def test_fault_error_body(onenet, fuse):
    tok = started(onenet)
    onenet.ctl("fault", {"kind": "error_body", "code": 2})
    request = b"GET /ota/south/download/%s HTTP/1.1\r\nHost: x\r\n\r\n" % tok.encode()
    with onenet.raw(request) as sock:
        data = read_to_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length" not in head.lower() and b"chunked" not in head.lower()
    assert body == b"2"
    tid = fuse.reset()["task"]["tid"]
    fuse.ctl("fault", {"kind": "error_body", "code": 4})
    status, head, body = fuse.request("GET", FUSE + "%d/download" % tid, headers=token())
    assert (status, head["ota-errno"], json.loads(body)["code"]) == (200, "4", 4)


def test_fault_matching_and_validation(onenet):
    onenet.reset()
    queued = onenet.ctl("fault", {"kind": "status", "status": 500, "on": "*", "times": 2})
    assert queued["faults"][0]["times"] == 2
    assert [onenet.request("GET", "/anything")[0] for _ in range(3)] == [500, 500, 404]
    for bad, text in (
        ({"kind": "boom"}, "fault kind"),
        ({"kind": "drop", "on": "nowhere"}, "fault 'on'"),
        ({"kind": "error_body", "on": "check"}, "downloads only"),
        ({"kind": "wrong_digest", "on": "download"}, "check only"),
        ({"kind": "code", "on": "download"}, "JSON endpoints"),
        ({"kind": "drop", "after": -1}, "after"),
        ({"kind": "drop", "extra": 1}, "unknown fault field"),
    ):
        assert text in onenet.ctl_error("fault", bad), bad
    assert onenet.ctl("state")["faults"] == []


def test_faults_over_tls():
    api = Api(os.environ["FOTA_TEST_ONENET_TLS"])
    assert api.tls and api.host == "localhost"
    files = Path(os.environ["FOTA_TEST_FILES"])
    tok = started(api, image=str(files / "small.bin"), version="2.0.0")
    small = (files / "small.bin").read_bytes()
    assert api.request("GET", "/ota/south/download/" + tok)[2] == small
    api.ctl("fault", {"kind": "drop", "after": 1000})
    conn = api.connection()
    conn.request("GET", "/ota/south/download/" + tok)
    with pytest.raises(http.client.IncompleteRead) as info_:
        conn.getresponse().read()
    assert len(info_.value.partial) == 1000
    conn.close()
    api.ctl("fault", {"kind": "stall", "after": 500})
    with api.raw(b"GET /ota/south/download/%s HTTP/1.1\r\nHost: x\r\n\r\n" % tok.encode()) as sock:
        head, body = read_head(sock, 500)
        assert head.startswith("http/1.1 200") and body == small[:500]
        assert_quiet(sock)
    api.reset(image=None)


# -- the record, the control API, the shared instances ------------------------------------------


def test_log_records_every_device_request(onenet):
    tok = started(onenet)
    onenet.request("GET", "/ota/south/download/" + tok, headers={"Range": "bytes=0-9"})
    progress(onenet, tok, 5)
    onenet.ctl("state")  # control requests are not recorded
    log = onenet.ctl("log")
    assert [r["endpoint"] for r in log] == ["check", "download", "progress"]
    first, download, report = log
    assert first["method"] == "GET" and first["path"] == "/ota/south/check"
    assert first["query"] == {
        "dev_id": "522747162",
        "manuf": "101",
        "model": "10101",
        "type": "1",
        "version": "1.0.0",
        "cdn": "false",
    }
    assert first["headers"]["authorization"].startswith("version=2018-10-31&res=products%2F")
    assert first["answer"]["data"]["token"] == tok and first["status"] == 200
    assert first["json"] is None and first["body_len"] == 0 and first["range"] is None
    assert download["answer"] is None and download["status"] == 206
    assert download["range"] == "bytes=0-9" and download["headers"]["range"] == "bytes=0-9"
    assert report["json"] == {"step": 5} and report["body_len"] == len(b'{"step": 5}')
    assert report["answer"] == {"errno": 0, "error": "succ"}
    assert onenet.json("GET", "/_emu/log?since=2") == [report]
    assert onenet.reset()["requests"] == 0 and onenet.ctl("log") == []


def test_control_api_errors_and_clock(onenet, tmp_path):
    assert "cannot read image" in onenet.ctl_error("reset", {"image": str(tmp_path / "no.bin")})
    assert "unknown reset option" in onenet.ctl_error("reset", {"colour": "red"})
    assert "OneNET versions" in onenet.ctl_error("reset", {"version": "2.0.0 beta"})
    assert "needs a version" in onenet.ctl_error("reset", {"version": ""})
    assert onenet.request("POST", "/_emu/nothing", {})[0] == 404
    before = onenet.ctl("state")["now"]
    answer = onenet.ctl("clock", {"offset_s": 86400})
    assert answer["offset_s"] == 86400 and answer["now"] - before >= 86400
    assert onenet.ctl("state")["clock_offset_s"] == 86400
    assert "offset_s" in onenet.ctl_error("clock", {"offset": 1})
    assert onenet.reset()["clock_offset_s"] == 0
    assert onenet.ctl("")["endpoints"][0] == "version"


def test_python_api_errors(image_path):
    with pytest.raises(emu.EmuError, match="unknown cloud"):
        emu.start("nimbus")
    with pytest.raises(emu.EmuError, match="unknown option"):
        emu.start("onenet", colour="red")
    with pytest.raises(emu.EmuError, match="cannot read image"):
        emu.start("sagoo", image="/nonexistent/fw.bin", version="1")
    with emu.start("sagoo") as server:
        port = urlsplit(server.url).port
        with pytest.raises(emu.EmuError, match="cannot listen"):
            emu.start("sagoo", port=port)


def test_netfixtures_announce_the_emulators():
    for env, cloud in (
        ("FOTA_TEST_ONENET", "onenet"),
        ("FOTA_TEST_ONENET_FUSE", "onenet-fuse"),
        ("FOTA_TEST_SAGOO", "sagoo"),
        ("FOTA_TEST_ONENET_TLS", "onenet"),
    ):
        assert Api(os.environ[env]).ctl("")["cloud"] == cloud


# -- the command line ---------------------------------------------------------------------------

CLI = [sys.executable, str(ROOT / "tools" / "emulator.py")]


def _readline(proc, timeout):
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), "no JSON line within %s s" % timeout
    return proc.stdout.readline()


def test_cli_serves_until_terminated(image_path):
    proc = subprocess.Popen(
        CLI + ["onenet", "--image", image_path, "--version", "2.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info_ = json.loads(_readline(proc, 20))
        assert info_["cloud"] == "onenet" and info_["product_id"] == "123123"
        assert info_["access_key"] == KEY and info_["dev_id"] == "522747162"
        assert info_["control"] == info_["url"] + "/_emu"
        api = Api(info_["url"])
        assert check(api)["data"]["size"] == N
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


@pytest.mark.parametrize(
    "args,text",
    [
        ([], "usage:"),
        (["onenet", "--image", "x.bin"], "usage:"),
        (["nimbus"], "usage:"),
        (["sagoo", "--image", "/nonexistent.bin", "--version", "1"], "emulator: cannot read"),
        (["onenet", "--image", __file__, "--version", "1", "--tls-cert", "a"], "go together"),
    ],
)
def test_cli_errors(args, text):
    proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and text in proc.stderr and proc.stdout == ""


def test_cli_port_in_use(image_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        args = ["sagoo", "--image", image_path, "--version", "1", "--port", port]
        proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and proc.stderr.startswith("emulator: cannot listen")
