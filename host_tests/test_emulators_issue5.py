# The MXCHIP FOG and Aliyun emulators (tools/emu/mxchip.py, aliyun.py) on CPython: the auth
# vectors of protocols.md 4.1, every endpoint and documented code, MXCHIP's management API round
# trip (oss token, upload, files create/list/get/update/delete), the Aliyun job's state machine,
# faults, the control API and the command line. Clients are http.client and raw sockets.

import base64
import hashlib
import http.client
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import emu  # noqa: E402
from emu import aliyun  # noqa: E402

WIFI = bytes((i * 11 + 5) % 253 for i in range(6000))
MCU = bytes((i * 3 + 1) % 241 for i in range(3000))
TIMEOUT = 5
TOKEN = "d79be1d657d9a8b45f6f903620e84b06cbf225e0"
AUTH = {"Authorization": "token " + TOKEN}
PK, DN = "ZG1EvTEa7NN", "NlwaSPXsCpTQuh8FxBGH"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emu5")
    (folder / "wifi-2.0.0.bin").write_bytes(WIFI)
    (folder / "mcu-1.1.0.bin").write_bytes(MCU)
    return str(folder / "wifi-2.0.0.bin"), str(folder / "mcu-1.1.0.bin")


@pytest.fixture(scope="module")
def mx(images):
    with emu.start("mxchip", image=images[0], version="2.0.0") as server:
        yield Api(server.url, images)


@pytest.fixture(scope="module")
def ali(images):
    with emu.start("aliyun", image=images[0], version="2.0.0") as server:
        yield Api(server.url, images)


class Api:
    """Plain requests to one emulator (http.client, one connection per request)."""

    def __init__(self, url, images=(None, None)):
        self.url = url
        self.images = images
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method, path, body=None, headers=None):
        """-> (status, {lowercase header: value}, body bytes); body: bytes or JSON-able."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode()
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, status=200):
        got, _, data = self.request(method, path, body, headers)
        assert got == status, (got, data)
        return json.loads(data)

    def ctl(self, name, body=None):
        if body is None:
            return self.json("GET", "/_emu/" + name)
        return self.json("POST", "/_emu/" + name, body)

    def ctl_error(self, name, body):
        return self.json("POST", "/_emu/" + name, body, status=400)["error"]

    def reset(self, **options):
        body = {"image": self.images[0], "version": "2.0.0"}
        body.update(options)
        return self.ctl("reset", body)

    def raw(self, request):
        sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        sock.sendall(request)
        return sock

    def path_of(self, url):
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (self.host, self.port), url
        return parts.path + ("?" + parts.query if parts.query else "")


def first_response(sock):
    """The body of the first response on a raw socket."""
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp.read()


# -- Aliyun: /auth ------------------------------------------------------------------------------

SAMPLE = {"clientId": "mylight1000002", "deviceName": DN, "productKey": PK}


def auth_body(fields=None, method="hmacsha1", secret="secret", sign=None, **extra):
    body = dict(SAMPLE if fields is None else fields)
    body.update(extra)
    body["sign"] = sign if sign is not None else aliyun.sign(secret, body, method)
    if method is not None:
        body["signmethod"] = method
    body["version"] = "default"
    return body


def auth(api, body, headers=None):
    return api.json("POST", "/auth", body, headers or {"Content-Type": "application/json"})


def token_of(api, **kw):
    answer = auth(api, auth_body(**kw))
    assert answer["code"] == 0, answer
    return answer["info"]["token"]


def set_clock(api, unix_s):
    """Shift the emulator's clock so that its now is about unix_s."""
    api.ctl("clock", {"offset_s": unix_s - time.time()})


def test_aliyun_sign_vectors_of_protocols_md():
    fields = {"clientId": "12345", "deviceName": "device", "productKey": "pk", "timestamp": "789"}
    assert aliyun.content(dict(fields, sign="x", signmethod="y", version="z")) == (
        "clientId12345deviceNamedeviceproductKeypktimestamp789"
    )
    assert aliyun.sign("secret", fields, "hmacsha1") == "fafd82a3d602b37fb0fa8b7892f24a477f851a14"
    assert aliyun.sign("secret", fields, "hmacmd5") == "14b198324fe55e1d3c88f2e705e201ee"
    doc = dict(SAMPLE, timestamp="1501668289957")
    assert aliyun.sign("secret", doc, "hmacsha1") == "335bdc0fbd47de9bbf1f7f77fdf803ab1821f5ed"
    assert aliyun.sign("secret", doc, "hmacmd5") == "c7692bed2591603442c19b087213f737"
    assert aliyun.sign("secret", SAMPLE, "hmacsha1") == "d34c809238a1eaf25f48ddef7cdb0bdd551efcdf"


def test_aliyun_auth_accepts_the_vectors(images):
    with emu.start("aliyun", product_key="pk", device_name="device") as server:
        api = Api(server.url)
        fields = {"clientId": "12345", "deviceName": "device", "productKey": "pk"}
        set_clock(api, 0.789)  # timestamp 789 ms is "now"
        for method, sign in (
            ("hmacsha1", "FAFD82A3D602B37FB0FA8B7892F24A477F851A14"),  # as published
            ("hmacsha1", "fafd82a3d602b37fb0fa8b7892f24a477f851a14"),
            ("hmacmd5", "14b198324fe55e1d3c88f2e705e201ee"),
        ):
            body = auth_body(fields, method, sign=sign, timestamp="789")
            answer = auth(api, body)
            assert answer["code"] == 0 and answer["message"] == "success", (method, answer)
            token = answer["info"]["token"]
            header, payload, mac = token.split(".")
            assert json.loads(base64.urlsafe_b64decode(header + "==")) == {
                "type": "JWT",
                "alg": "hmacsha1",
            }
            claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
            assert claims["expire"] == pytest.approx((0.789 + 48 * 3600) * 1000, abs=5000)
            assert len(mac) == 27  # base64url of 20 bytes, unpadded, as the seed's sample
    api = Api(os.environ["FOTA_TEST_ALIYUN"])
    api.ctl("reset", {"image": None})
    set_clock(api, 1501668289.957)
    stamp = "1501668289957"
    sha1 = "335bdc0fbd47de9bbf1f7f77fdf803ab1821f5ed"
    md5 = "c7692bed2591603442c19b087213f737"
    assert auth(api, auth_body(sign=sha1, timestamp=stamp))["code"] == 0
    assert auth(api, auth_body(method="hmacmd5", sign=md5, timestamp=stamp))["code"] == 0
    # no signmethod: hmacmd5 (the seed's default)
    assert auth(api, auth_body(method=None, sign=md5, timestamp=stamp))["code"] == 0
    assert auth(api, auth_body(method=None, sign=sha1, timestamp=stamp))["code"] == 20000
    api.ctl("reset", {"image": None})  # today's clock: no timestamp, no window
    no_ts = "d34c809238a1eaf25f48ddef7cdb0bdd551efcdf"
    assert auth(api, auth_body(sign=no_ts.upper()))["code"] == 0
    assert len(api.ctl("state")["tokens"]) == 1


def test_aliyun_auth_refusals(ali):
    ali.reset()
    now_ms = int(time.time() * 1000)

    def code(body, headers=None):
        return auth(ali, body, headers)["code"]

    assert code(auth_body(timestamp=str(now_ms))) == 0
    assert code(auth_body(timestamp=str(now_ms - 14 * 60 * 1000))) == 0
    assert code(auth_body(timestamp=str(now_ms - 16 * 60 * 1000))) == 20000  # over 15 minutes
    assert code(auth_body(timestamp=str(now_ms + 16 * 60 * 1000))) == 20000
    assert code(auth_body(timestamp="12ab")) == 10001
    assert code(auth_body(sign="0" * 40)) == 20000
    assert code(auth_body(secret="not-the-secret")) == 20000
    assert code(auth_body(dict(SAMPLE, productKey="other"))) == 20000
    assert code(auth_body(dict(SAMPLE, clientId="c" * 64))) == 0
    assert code(auth_body(dict(SAMPLE, clientId="c" * 65))) == 10001
    assert code(auth_body({"clientId": "c", "deviceName": DN})) == 10001  # no productKey
    assert code(auth_body(method="hmacsha256")) == 10001  # only md5 and sha1 are documented
    assert code(auth_body(), {"Content-Type": "text/plain"}) == 10001
    assert code(dict(auth_body(), timestamp=123)) == 10001  # values are strings
    assert ali.json("POST", "/auth", b"{nope", {"Content-Type": "application/json"})["code"] == (
        10001
    )
    # Content-Length is mandatory: a chunked body is refused
    data = json.dumps(auth_body()).encode()
    request = (
        b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (len(data), data)
    )
    with ali.raw(request) as sock:
        assert json.loads(first_response(sock))["code"] == 10001
    # ... and exact: a body cut to a shorter Content-Length is no JSON; one that goes on past
    # it is not HTTP (aiohttp answers 400 itself, before the emulator sees a request)
    for length, extra, want in ((len(data) - 5, b"", 10001), (len(data) - 5, b"x", 400)):
        request = (
            b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (length, data[:length] + extra)
        )
        with ali.raw(request) as sock:
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            body = resp.read()
            assert (json.loads(body)["code"] if resp.status == 200 else resp.status) == want
    ali.reset(sign_methods=["hmacsha256"])
    assert code(auth_body(method="hmacsha256")) == 0
    assert code(auth_body()) == 10001
    assert "sign_methods" in ali.ctl_error("reset", {"sign_methods": ["rot13"]})


# -- Aliyun: /topic ---------------------------------------------------------------------------

TOPIC_GET = "/topic/sys/%s/%s/thing/ota/firmware/get" % (PK, DN)
TOPIC_INFORM = "/topic/ota/device/inform/%s/%s" % (PK, DN)
TOPIC_PROGRESS = "/topic/ota/device/progress/%s/%s" % (PK, DN)
_ids = [0]


def publish(api, topic, payload, token, ctype="application/octet-stream", raw=False):
    headers = {"Content-Type": ctype}
    if token is not None:
        headers["password"] = token
    if not raw:
        _ids[0] += 1
        payload = json.dumps(dict(payload, id=str(_ids[0]))).encode()
    return api.json("POST", topic, payload, headers)


def firmware_get(api, token, module=None):
    params = {"module": module} if module else {}
    body = {"version": "1.0", "params": params, "method": "thing.ota.firmware.get"}
    answer = publish(api, TOPIC_GET, body, token)
    assert answer["code"] == 0, answer
    return answer["info"]["data"]


def step(api, token, value, desc="", module=None):
    params = {"step": value, "desc": desc}
    if module:
        params["module"] = module
    return publish(api, TOPIC_PROGRESS, {"params": params}, token)["code"]


def inform(api, token, version, module=None):
    params = {"version": version}
    if module:
        params["module"] = module
    return publish(api, TOPIC_INFORM, {"params": params}, token)["code"]


def test_aliyun_publish_checks_and_token_life(ali):
    ali.reset()
    token = token_of(ali)
    answer = publish(ali, "/topic/%s/%s/user/update" % (PK, DN), {"x": 1}, token)
    assert answer["code"] == 0 and answer["message"] == "success"
    assert isinstance(answer["info"]["messageId"], int) and "data" not in answer["info"]
    second = publish(ali, "/topic/%s/%s/user/update" % (PK, DN), {"x": 1}, token)
    assert second["info"]["messageId"] > answer["info"]["messageId"]
    assert publish(ali, TOPIC_INFORM, {}, None)["code"] == 20002
    assert publish(ali, TOPIC_INFORM, {}, "")["code"] == 20002
    assert publish(ali, TOPIC_INFORM, {}, token + "x")["code"] == 20003
    assert publish(ali, TOPIC_INFORM, {}, token, ctype="application/json")["code"] == 10001
    assert ali.json("POST", TOPIC_INFORM + "?a=b", b"{}", {"password": token})["code"] == 10001
    other = "/topic/ota/device/inform/%s/someone-else" % PK
    assert publish(ali, other, {"params": {"version": "1"}}, token)["code"] == 30001
    assert publish(ali, "/topic/sys/other/thing", {}, token)["code"] == 30001
    # 128 KB: the limit itself passes, one byte more does not
    assert publish(ali, TOPIC_INFORM, b"x" * (128 * 1024), token, raw=True)["code"] == 0
    assert publish(ali, TOPIC_INFORM, b"x" * (128 * 1024 + 1), token, raw=True)["code"] == 10001
    # the token lives 48 h on the emulator's clock
    ali.ctl("clock", {"offset_s": 48 * 3600 - 60})
    assert inform(ali, token, "1.0.0") == 0
    ali.ctl("clock", {"offset_s": 48 * 3600 + 1})
    assert inform(ali, token, "1.0.0") == 20001
    tokens = ali.ctl("state")["tokens"]
    assert [t["expired"] for t in tokens] == [True]
    assert inform(ali, token_of(ali), "1.0.0") == 0  # a new auth, a new token
    ali.reset(token_lifetime_s=60)
    token = token_of(ali)
    ali.ctl("clock", {"offset_s": 61})
    assert inform(ali, token, "1.0.0") == 20001
    ali.reset()
    assert inform(ali, token, "1.0.0") == 20003  # reset forgets every token


def test_aliyun_ota_job_succeeds_only_by_an_inform_of_the_target(ali):
    state = ali.reset()
    assert state["job"]["state"] == "pending" and state["push"] is None
    token = token_of(ali)
    data = firmware_get(ali, token)
    md5 = hashlib.md5(WIFI).hexdigest()
    assert set(data) == {"size", "version", "url", "md5", "sign", "signMethod"}
    assert (data["size"], data["version"], data["md5"], data["sign"], data["signMethod"]) == (
        len(WIFI),
        "2.0.0",
        md5,
        md5,
        "Md5",
    )
    path = ali.path_of(data["url"])
    status, head, body = ali.request("GET", path, headers={"Range": "bytes=10-19"})
    assert (status, head["content-range"], body) == (206, "bytes 10-19/%d" % len(WIFI), WIFI[10:20])
    assert ali.request("GET", path)[2] == WIFI
    assert ali.request("GET", path, headers={"Range": "bytes=99999-"})[0] == 416
    push = ali.ctl("state")["push"]
    assert push["code"] == "1000" and push["message"] == "success"
    assert push["data"]["md5"] == md5 and push["data"]["url"].startswith(ali.url + "/ota-files/")
    assert step(ali, token, "10") == 0
    job = ali.ctl("state")["job"]
    assert job["state"] == "upgrading" and job["steps"] == [["10", ""]]
    assert step(ali, token, "100") == 0
    assert ali.ctl("state")["job"]["state"] == "upgrading"  # 100 % alone is not success
    assert inform(ali, token, "1.0.0") == 0
    assert ali.ctl("state")["job"]["state"] == "upgrading"
    assert inform(ali, token, "2.0.0", module="other") == 0
    assert ali.ctl("state")["job"]["state"] == "upgrading"
    assert inform(ali, token, "2.0.0") == 0
    state = ali.ctl("state")
    assert state["job"]["state"] == "succeeded" and state["job"]["downloads"] == 2
    assert state["device"] == {"default": "2.0.0", "other": "2.0.0"}
    assert firmware_get(ali, token) == {}  # nothing to upgrade now
    assert state["ignored"] == []
    # what the OTA service cannot use is still published, and listed
    assert step(ali, token, "50") == 0  # the job is over
    assert step(ali, token, 50) == 0
    assert step(ali, token, "0") == 0
    assert publish(ali, TOPIC_PROGRESS, b"not json", token, raw=True)["code"] == 0
    bad_id = json.dumps({"id": "x", "params": {"version": "3"}}).encode()
    assert publish(ali, TOPIC_INFORM, bad_id, token, raw=True)["code"] == 0
    state = ali.ctl("state")
    assert [e for e, _ in state["ignored"]] == ["progress"] * 4 + ["inform"]
    assert "no job" in state["ignored"][0][1] and "step must be" in state["ignored"][1][1]
    assert "numeric string" in state["ignored"][4][1] and state["device"]["default"] == "2.0.0"


def test_aliyun_job_failure_module_sha256_and_text_data(ali):
    ali.reset()
    token = token_of(ali)
    assert step(ali, token, "-3", "md5 mismatch") == 0
    job = ali.ctl("state")["job"]
    assert job["state"] == "failed" and job["last_step"] == "-3"
    assert inform(ali, token, "2.0.0") == 0
    assert ali.ctl("state")["job"]["state"] == "failed"  # over: an inform changes nothing
    ali.reset(module="MCU", sign_method="sha256", ext_data={"_package_udi": "x"})
    token = token_of(ali)
    assert firmware_get(ali, token) == {}  # another module
    data = firmware_get(ali, token, "MCU")
    assert data["module"] == "MCU" and data["signMethod"] == "SHA256" and "md5" not in data
    assert data["sign"] == hashlib.sha256(WIFI).hexdigest()
    assert data["extData"] == {"_package_udi": "x"}
    assert step(ali, token, "5") == 0  # default module: not this job
    assert step(ali, token, "5", module="MCU") == 0
    assert ali.ctl("state")["job"]["state"] == "upgrading"
    ali.ctl("task", {"state": "cancelled"})
    assert firmware_get(ali, token, "MCU") == {}
    ali.reset(data_as_text=True)
    text = firmware_get(ali, token_of(ali))
    assert isinstance(text, str) and json.loads(text)["version"] == "2.0.0"
    ali.ctl("reset", {"image": None})
    assert firmware_get(ali, token_of(ali)) == {}
    assert "task state" in ali.ctl_error("task", {"state": "paused"})
    assert "no job" in ali.ctl_error("task", {"state": "cancelled"})
    assert "sign_method" in ali.ctl_error("reset", {"sign_method": "crc"})


def test_aliyun_file_url_is_signed_and_expires(ali):
    ali.reset()
    token = token_of(ali)
    path = ali.path_of(firmware_get(ali, token)["url"])
    status, head, body = ali.request("GET", path.replace("Signature=", "Signature=A"))
    assert status == 403 and b"SignatureDoesNotMatch" in body
    assert head["content-type"] == "application/xml"
    assert ali.request("GET", path.replace("Expires=", "Expires=1"))[0] == 403
    assert ali.request("GET", path.split("?")[0])[0] == 403
    ali.ctl("clock", {"offset_s": 24 * 3600 + 5})
    status, _, body = ali.request("GET", path)
    assert status == 403 and b"Request has expired" in body
    assert ali.request("GET", "/ota-files/1/nothing.bin")[0] == 404


def test_aliyun_faults_and_rate_limit(ali):
    ali.reset()
    token = token_of(ali)
    ali.ctl("fault", {"kind": "code", "code": 40000})
    assert publish(ali, TOPIC_GET, {"params": {}}, token) == {
        "code": 40000,
        "message": "request too many",
    }
    ali.ctl("fault", {"kind": "code", "code": 40000, "on": "auth"})
    assert auth(ali, auth_body())["code"] == 40000
    ali.ctl("fault", {"kind": "wrong_digest"})
    assert firmware_get(ali, token)["md5"] != hashlib.md5(WIFI).hexdigest()
    assert firmware_get(ali, token)["md5"] == hashlib.md5(WIFI).hexdigest()
    ali.ctl("fault", {"kind": "status", "status": 503, "on": "progress"})
    assert ali.request("POST", TOPIC_PROGRESS, b"{}", {"password": token})[0] == 503
    path = ali.path_of(firmware_get(ali, token)["url"])
    ali.ctl("fault", {"kind": "drop", "after": 100})
    conn = http.client.HTTPConnection(ali.host, ali.port, timeout=TIMEOUT)
    conn.request("GET", path)
    with pytest.raises(http.client.IncompleteRead) as info:
        conn.getresponse().read()
    assert len(info.value.partial) == 100
    conn.close()
    log = ali.ctl("log")
    assert [r["endpoint"] for r in log] == [
        "auth",
        "check",
        "auth",
        "check",
        "check",
        "progress",
        "check",
        "download",
    ]
    assert [r["fault"] for r in log][1:] == [
        "code",
        "code",
        "wrong_digest",
        None,
        "status",
        None,
        "drop",
    ]
    assert log[1]["headers"]["password"] == token and log[1]["body_len"] > 0
    assert "fault kind" in ali.ctl_error("fault", {"kind": "error_body"})
    # the rate limit option: 3 requests per 60 s, then 40000 until the window moves on
    ali.reset(rate_limit=3)
    token = token_of(ali)
    assert [inform(ali, token, "1") for _ in range(3)] == [0, 0, 40000]
    assert auth(ali, auth_body())["code"] == 40000
    ali.ctl("clock", {"offset_s": 61})
    assert inform(ali, token, "1") == 0


# -- MXCHIP: device API -------------------------------------------------------------------------


def mx_check(api, wifi="1.0.0", mcu="1.0.0", pid="test", headers=AUTH, status=200):
    path = "/api/v1/ota/device/?product_id=%s&wifi_version=%s&mcu_version=%s" % (pid, wifi, mcu)
    return api.json("GET", path, headers=headers, status=status)


def mx_put(api, wifi, mcu, device="mxdev001", status=200):
    body = {"device_id": device, "wifi_version": wifi, "mcu_version": mcu}
    return api.json("PUT", "/api/v1/ota/version/", body, AUTH, status)


def test_mxchip_auth(mx):
    mx.reset()
    for headers, code in (
        ({}, 27054),
        ({"Authorization": "Bearer " + TOKEN}, 27054),
        ({"Authorization": "token"}, 27054),
        ({"Authorization": "token " + TOKEN[:-1] + "1"}, 1201),
        ({"Authorization": "JWT " + TOKEN}, 27054),
    ):
        answer = mx_check(mx, headers=headers, status=401)
        assert answer["meta"]["code"] == code and answer["data"] == {}, headers
        assert mx.json("GET", "/oss_token/ota/", headers=headers, status=401)["meta"]["code"] == (
            code
        )
    assert mx.json("GET", "/api/v1/ota/test/files/", status=401)["meta"]["code"] == 27054
    assert mx_check(mx, headers={"Authorization": "Token " + TOKEN})["meta"]["code"] == 0


def test_mxchip_check_offers_zero_one_or_two_files(mx, images):
    state = mx.reset(mcu_image=images[1], mcu_version="1.1.0")
    assert [f["ota_type"] for f in state["files"]] == [1, 0]
    assert state["mcu_image"]["size"] == len(MCU)
    answer = mx_check(mx)
    assert answer["meta"] == {"code": 0, "message": "ota file info"}
    files = answer["data"]["files"]
    assert answer["data"]["need_ota"] is True
    assert [(f["ota_type"], f["version"]) for f in files] == [(0, "1.1.0"), (1, "2.0.0")]
    assert set(files[0]) == {"file_url", "md5", "version", "ota_type", "customize"}
    assert files[0]["md5"] == hashlib.md5(MCU).hexdigest()
    assert files[1]["md5"] == hashlib.md5(WIFI).hexdigest()
    assert mx.request("GET", mx.path_of(files[0]["file_url"]))[2] == MCU
    assert mx.request("GET", mx.path_of(files[1]["file_url"]))[2] == WIFI
    only_wifi = mx_check(mx, mcu="1.1.0")["data"]["files"]
    assert [f["ota_type"] for f in only_wifi] == [1]
    only_mcu = mx_check(mx, wifi="2.0.0")["data"]["files"]
    assert [f["ota_type"] for f in only_mcu] == [0]
    assert mx_check(mx, wifi="2.0.0", mcu="1.1.0")["data"] == {"need_ota": False, "files": []}
    # "differs", not "is older": the platform offers its file to a newer device too
    assert len(mx_check(mx, wifi="3.0.0", mcu="1.1.0")["data"]["files"]) == 1
    # the seed's example URL, /api/v1/ota/devce/ (sic)
    path = "/api/v1/ota/devce/?product_id=test&wifi_version=1&mcu_version=1"
    assert len(mx.json("GET", path, headers=AUTH)["data"]["files"]) == 2
    for bad in (
        "/api/v1/ota/device/?product_id=test&wifi_version=1",
        "/api/v1/ota/device/?wifi_version=1&mcu_version=1",
        "/api/v1/ota/device/?product_id=other&wifi_version=1&mcu_version=1",
    ):
        assert mx.json("GET", bad, headers=AUTH, status=400)["meta"]["code"] == 10000, bad
    state = mx.ctl("state")
    assert state["checks"][0] == ["1.0.0", "1.0.0"]
    assert {j["state"] for j in state["jobs"].values()} == {"downloading"}
    mx.ctl("reset", {"image": None})
    assert mx_check(mx)["data"] == {"need_ota": False, "files": []}
    assert "needs an mcu_image" in mx.ctl_error("reset", {"mcu_version": "1"})
    assert "needs a version" in mx.ctl_error("reset", {"mcu_image": images[1]})
    assert "file_status" in mx.ctl_error("reset", {"file_status": 5})


def test_mxchip_version_put_decides_success(mx, images):
    state = mx.reset(mcu_image=images[1], mcu_version="1.1.0", device_wifi_version="1.0.0")
    assert state["device"] == {
        "device_id": "mxdev001",
        "wifi_version": "1.0.0",
        "mcu_version": None,
    }
    mx_check(mx)
    answer = mx_put(mx, "1.0.0", "1.1.0")
    assert answer == {"meta": {"code": 0, "message": "update version ok"}, "data": {}}
    jobs = mx.ctl("state")["jobs"]
    assert (jobs["1"]["state"], jobs["2"]["state"]) == ("offered", "succeeded")
    mx_put(mx, "2.0.0", "1.1.0")
    state = mx.ctl("state")
    assert state["jobs"]["1"]["state"] == "succeeded"
    assert state["device"] == {
        "device_id": "mxdev001",
        "wifi_version": "2.0.0",
        "mcu_version": "1.1.0",
    }
    assert len(state["reports"]) == 2
    assert mx_put(mx, "2.0.0", "1.1.0", device="other", status=400)["meta"]["code"] == 10000
    bad = {"device_id": "mxdev001", "wifi_version": "2.0.0"}
    assert mx.json("PUT", "/api/v1/ota/version/", bad, AUTH, 400)["meta"]["code"] == 10000
    bad = dict(bad, mcu_version=3)
    assert mx.json("PUT", "/api/v1/ota/version/", bad, AUTH, 400)["meta"]["code"] == 10000
    assert mx.json("PUT", "/api/v1/ota/version/", b"{", AUTH, 400)["meta"]["code"] == 10000
    assert mx.json("PUT", "/api/v1/ota/version/", bad, status=401)["meta"]["code"] == 27054


# -- MXCHIP: management API ---------------------------------------------------------------------

FILES = "/api/v1/ota/test/files/"


def new_file(api, status=200, **fields):
    body = {
        "file_name": "ota.bin",
        "file_url": "https://example.com/a.bin",
        "md5": "0" * 32,
        "size": "20kb",
        "version": "1.0.1",
    }
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    return api.json("POST", FILES, body, AUTH, status)


def oss_upload(api, key, data, token=None, callback=True, **overrides):
    token = token or api.json("GET", "/oss_token/ota/", headers=AUTH)["data"]
    fields = {
        "key": key,
        "policy": token["policy"],
        "OSSAccessKeyId": token["accessid"],
        "Signature": token["signature"],
        "success_action_status": "200",
    }
    if callback:
        fields["callback"] = token["callback"]
    fields.update(overrides)
    boundary = "fotaBoundary42"
    parts = []
    for name, value in fields.items():
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (boundary.encode(), name.encode(), value.encode())
        )
    parts.append(
        b'--%s\r\nContent-Disposition: form-data; name="file"; filename="fw.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n%s\r\n--%s--\r\n"
        % (boundary.encode(), data, boundary.encode())
    )
    headers = {"Content-Type": "multipart/form-data; boundary=" + boundary}
    return api.request("POST", api.path_of(token["host"]) + "/", b"".join(parts), headers)


def test_mxchip_management_round_trip(mx):
    mx.ctl("reset", {"image": None})
    token = mx.json("GET", "/oss_token/ota/", headers=AUTH)
    assert token["meta"] == {"code": 0, "message": "oss token"}
    data = token["data"]
    assert set(data) == {"accessid", "host", "policy", "signature", "expire", "dir", "callback"}
    assert data["dir"] == "ota/" and data["host"] == mx.url + "/files"
    assert json.loads(base64.b64decode(data["callback"]))["callbackUrl"].startswith(mx.url)
    # upload an image the way the oss token says, then publish it as a wifi file
    firmware = b"\x00\r\n--fotaBoundary4 not the end" + WIFI
    status, head, body = oss_upload(mx, "ota/fw-3.0.0.bin", firmware, data)
    uploaded = json.loads(body)["data"]
    assert status == 200 and head["etag"] == '"%s"' % hashlib.md5(firmware).hexdigest().upper()
    assert uploaded == {
        "file_url": mx.url + "/files/ota/fw-3.0.0.bin",
        "md5": hashlib.md5(firmware).hexdigest(),
        "size": len(firmware),
    }
    assert mx.request("GET", "/files/ota/fw-3.0.0.bin")[2] == firmware
    created = new_file(
        mx,
        ug_type=1,
        file_name="fw-3.0.0.bin",
        file_url=uploaded["file_url"],
        md5=uploaded["md5"],
        size=str(uploaded["size"]),
        version="3.0.0",
        mac_range=["DEF1LUK"],
        customize="xxx",
    )
    assert created["meta"] == {"code": 0, "message": "upload file ok"}
    record = created["data"]
    assert set(record) == {
        "id",
        "product",
        "ota_type",
        "file_name",
        "file_url",
        "size",
        "md5",
        "version",
        "mac_range",
        "customize",
        "created_at",
        "updated_at",
        "description",
        "status",
        "is_delete",
        "extra",
    }
    assert (record["product"], record["ota_type"], record["status"], record["is_delete"]) == (
        "test",
        1,
        0,
        False,
    )
    assert record["mac_range"] == ["DEF1LUK"] and len(record["created_at"]) == 19
    fid = record["id"]
    # the device now gets it
    files = mx_check(mx)["data"]["files"]
    assert files == [
        {
            "file_url": uploaded["file_url"],
            "md5": uploaded["md5"],
            "version": "3.0.0",
            "ota_type": 1,
            "customize": "xxx",
        }
    ]
    # the default ug_type is 0 (mcu); a form body works as well as JSON
    form = "file_name=m.bin&file_url=https%3A%2F%2Fx%2Fm.bin&md5=ab&size=1&version=0.9"
    headers = dict(AUTH, **{"Content-Type": "application/x-www-form-urlencoded"})
    mcu = mx.json("POST", FILES, form.encode(), headers)["data"]
    assert mcu["ota_type"] == 0 and mcu["file_url"] == "https://x/m.bin"
    # list with pages of 10
    for n in range(10):
        new_file(mx, version="1.0.%d" % n)
    page1 = mx.json("GET", FILES, headers=AUTH)
    assert page1["meta"] == {"message": "info list", "code": 0}
    assert page1["data"]["count"] == 12 and page1["data"]["page_size"] == 10
    assert len(page1["data"]["results"]) == 10 and page1["data"]["previous"] is None
    page2 = mx.json("GET", mx.path_of(page1["data"]["next"]), headers=AUTH)["data"]
    assert len(page2["results"]) == 2 and page2["next"] is None
    assert mx.path_of(page2["previous"]) == FILES
    assert mx.json("GET", FILES + "?page=3", headers=AUTH, status=400)["meta"]["code"] == 10000
    # get, update
    one = mx.json("GET", FILES + str(fid), headers=AUTH)
    assert one["meta"] == {"code": 0, "message": "file info"} and one["data"] == record
    change = {
        "file_url": uploaded["file_url"],
        "version": "3.0.1",
        "md5": uploaded["md5"],
        "size": "big",
        "description": "fixed",
        "status": 1,
    }
    updated = mx.json("PUT", FILES + str(fid), change, AUTH)
    assert updated["meta"] == {"code": 0, "message": "update file ok"}
    assert set(updated["data"]) == {
        "ota_type",
        "file_name",
        "file_url",
        "size",
        "md5",
        "version",
        "mac_range",
        "extra",
    }
    assert updated["data"]["version"] == "3.0.1" and updated["data"]["size"] == "big"
    again = mx.json("GET", FILES + str(fid) + "/", headers=AUTH)["data"]
    assert again["status"] == 1 and again["description"] == "fixed"
    assert mx_check(mx)["data"]["files"][1]["version"] == "3.0.1"
    # the errors of the seed's tables
    assert mx.json("PUT", FILES + str(fid), {"version": "4"}, AUTH, 400)["meta"]["code"] == 10000
    taken = dict(change, version="1.0.3")  # an mcu file has it: another ota_type, allowed
    assert mx.json("PUT", FILES + str(fid), taken, AUTH)["meta"]["code"] == 0
    assert new_file(mx, status=400, version="1.0.3")["meta"]["code"] == 10000  # taken (mcu)
    assert new_file(mx, status=400, version=None)["meta"]["code"] == 10000
    assert new_file(mx, status=400, ug_type=7)["meta"]["code"] == 10000
    assert new_file(mx, status=400, file_url="ftp://x")["meta"]["code"] == 10000
    assert new_file(mx, status=400, mac_range="DEF1LUK")["meta"]["code"] == 10000
    other = "/api/v1/ota/other/files/"
    assert mx.json("GET", other, headers=AUTH, status=400)["meta"]["code"] == 10000
    assert mx.json("GET", FILES + "999", headers=AUTH, status=400)["meta"]["code"] == 10000
    assert mx.json("PUT", FILES + "999", change, AUTH, 400)["meta"]["code"] == 10000
    # delete: only test files (status 0); unknown ids are 10500
    assert mx.json("DELETE", FILES + str(fid), None, AUTH, 400)["meta"]["code"] == 10501
    assert mx.json("DELETE", FILES + "999", None, AUTH, 400)["meta"]["code"] == 10500
    assert mx.json("DELETE", FILES + "abc", None, AUTH, 400)["meta"]["code"] == 10000
    gone = mx.json("DELETE", FILES + str(mcu["id"]), None, AUTH)
    assert gone == {"meta": {"message": "任务删除成功", "code": 0}, "data": {"ot_id": None}}
    assert mx.json("DELETE", FILES + str(mcu["id"]), None, AUTH, 400)["meta"]["code"] == 10500
    assert mx.json("GET", FILES + str(mcu["id"]), headers=AUTH, status=400)["meta"]["code"] == (
        10000
    )
    assert mx.json("GET", FILES, headers=AUTH)["data"]["count"] == 11
    assert [f for f in mx.ctl("state")["files"] if f["is_delete"]][0]["id"] == mcu["id"]
    # an invalid (status 2) file is not offered; the newest mcu file is
    mx.json("PUT", FILES + str(fid), dict(change, status=2), AUTH)
    assert [f["version"] for f in mx_check(mx)["data"]["files"]] == ["1.0.9"]


def test_mxchip_upload_refusals(mx):
    mx.ctl("reset", {"image": None})
    token = mx.json("GET", "/oss_token/ota/", headers=AUTH)["data"]
    status, _, body = oss_upload(mx, "ota/a.bin", b"abc", token, Signature="AAAA")
    assert status == 403 and b"SignatureDoesNotMatch" in body
    status, _, body = oss_upload(mx, "elsewhere/a.bin", b"abc", token)
    assert status == 403 and b"AccessDenied" in body
    status, head, body = oss_upload(mx, "ota/b.bin", b"abc", token, callback=False)
    assert (status, body) == (200, b"") and head["etag"]
    status, _, _ = mx.request("POST", "/files/", b"x", {"Content-Type": "text/plain"})
    assert status == 400
    mx.ctl("clock", {"offset_s": 301})
    status, _, body = oss_upload(mx, "ota/c.bin", b"abc", token)
    assert status == 403 and b"Policy expired" in body
    assert mx.ctl("state")["uploads"] == ["ota/b.bin"]


def test_mxchip_files_ranges_and_faults(mx, images):
    mx.reset(mcu_image=images[1], mcu_version="1.1.0")
    path = "/files/ota/wifi/wifi-2.0.0.bin"
    status, head, body = mx.request("GET", path, headers={"Range": "bytes=0-0"})
    assert (status, head["content-range"], body) == (206, "bytes 0-0/%d" % len(WIFI), WIFI[:1])
    assert mx.request("GET", path, headers={"Range": "bytes=-10"})[2] == WIFI[-10:]
    status, head, _ = mx.request("GET", path, headers={"Range": "bytes=6000-"})
    assert status == 416 and head["content-range"] == "bytes */6000"
    assert mx.request("GET", path, headers={"Range": "5-9"})[0] == 200  # not RFC 7233: ignored
    assert mx.request("GET", "/files/ota/wifi/other.bin")[0] == 404
    mx.ctl("fault", {"kind": "wrong_digest"})
    files = mx_check(mx)["data"]["files"]
    assert files[0]["md5"] != hashlib.md5(MCU).hexdigest()
    assert files[1]["md5"] != hashlib.md5(WIFI).hexdigest()
    mx.ctl("fault", {"kind": "code", "code": 10000})
    assert mx_check(mx) == {"meta": {"code": 10000, "message": "injected fault"}, "data": {}}
    mx.ctl("fault", {"kind": "status", "status": 500, "on": "version"})
    assert mx.request("PUT", "/api/v1/ota/version/", b"{}", AUTH)[0] == 500
    mx.ctl("fault", {"kind": "drop", "after": 50})
    conn = http.client.HTTPConnection(mx.host, mx.port, timeout=TIMEOUT)
    conn.request("GET", path)
    with pytest.raises(http.client.IncompleteRead) as info:
        conn.getresponse().read()
    assert len(info.value.partial) == 50
    conn.close()
    log = mx.ctl("log")
    assert [(r["endpoint"], r["fault"]) for r in log[-4:]] == [
        ("check", "wrong_digest"),
        ("check", "code"),
        ("version", "status"),
        ("download", "drop"),
    ]
    assert log[-4]["headers"]["authorization"] == "token " + TOKEN
    assert log[-4]["query"] == {
        "product_id": "test",
        "wifi_version": "1.0.0",
        "mcu_version": "1.0.0",
    }
    assert "fault kind" in mx.ctl_error("fault", {"kind": "error_body"})
    assert "task state" in mx.ctl_error("task", {"state": "cancelled"})  # mxchip has no task


# -- shared instances, Python API, command line -------------------------------------------------


def test_netfixtures_announce_the_new_emulators():
    for env, cloud in (("FOTA_TEST_MXCHIP", "mxchip"), ("FOTA_TEST_ALIYUN", "aliyun")):
        info = Api(os.environ[env]).ctl("")
        assert info["cloud"] == cloud and info["endpoints"]
    assert Api(os.environ["FOTA_TEST_ALIYUN"]).ctl("")["device_secret"] == "secret"


def test_python_api_errors(images):
    with pytest.raises(emu.EmuError, match="unknown option"):
        emu.start("aliyun", colour="red")
    with pytest.raises(emu.EmuError, match="cannot read image"):
        emu.start("mxchip", image=images[0], version="2", mcu_image="/nonexistent", mcu_version="1")
    with emu.start("mxchip", token="t0k", product_id="p1") as server:
        api = Api(server.url)
        path = "/api/v1/ota/device/?product_id=p1&wifi_version=1&mcu_version=1"
        assert api.json("GET", path, headers={"Authorization": "token t0k"})["meta"]["code"] == 0


CLI = [sys.executable, str(ROOT / "tools" / "emulator.py")]


def _readline(proc, timeout):
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), "no JSON line within %s s" % timeout
    return proc.stdout.readline()


def test_cli_serves_both(images):
    wifi, mcu = images
    runs = (
        ["mxchip", "--image", wifi, "--version", "2.0"]
        + ["--mcu-image", mcu, "--mcu-version", "1"],
        ["aliyun", "--image", wifi, "--version", "2.0.0", "--token-lifetime-s", "60"],
    )
    procs = [
        subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in runs
    ]
    try:
        infos = [json.loads(_readline(p, 20)) for p in procs]
        mxi, alii = infos
        assert mxi["cloud"] == "mxchip" and mxi["token"] == TOKEN and mxi["product_id"] == "test"
        assert len(mx_check(Api(mxi["url"]))["data"]["files"]) == 2
        assert alii["cloud"] == "aliyun" and alii["product_key"] == PK
        api = Api(alii["url"])
        token = token_of(api)
        assert api.ctl("state")["options"]["token_lifetime_s"] == 60
        assert firmware_get(api, token)["version"] == "2.0.0"
    finally:
        for proc in procs:
            proc.terminate()
        ends = [(proc.communicate(timeout=10)[1], proc.returncode) for proc in procs]
    assert [code for _, code in ends] == [0, 0], ends


@pytest.mark.parametrize(
    "args,text",
    [
        (["mxchip", "--image", __file__, "--version", "1", "--mcu-version", "2"], "needs an mcu"),
        (["aliyun", "--image", __file__, "--version", "1", "--sign-method", "crc"], "sign_method"),
        (["aliyun", "--image", __file__], "usage:"),
    ],
)
def test_cli_errors(args, text):
    proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and text in proc.stderr and proc.stdout == ""
