# The Aliyun IoT emulator (tools/emu/aliyun.py) on CPython: the auth signature and its
# vectors, /auth's refusals, publishing on the OTA topics, the job's state machine, the signed file
# URL, faults and the rate limit. Clients are http.client and raw sockets (emuclient.py).

import base64
import hashlib
import http.client
import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import emu  # noqa: E402
from emu import aliyun  # noqa: E402
from emuclient import (  # noqa: E402
    DN,
    PK,
    SAMPLE,
    TIMEOUT,
    TOPIC_GET,
    TOPIC_INFORM,
    TOPIC_PROGRESS,
    Api,
    auth,
    auth_body,
    firmware_get,
    first_response,
    inform,
    publish,
    set_clock,
    step,
    token_of,
)
from emufixtures import WIFI  # noqa: E402

# -- Aliyun: /auth ------------------------------------------------------------------------------


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
            assert len(mac) == 27  # base64url of 20 bytes, unpadded, as Aliyun's sample token
    api = Api(os.environ["FOTA_TEST_ALIYUN"])
    api.ctl("reset", {"image": None})
    set_clock(api, 1501668289.957)
    stamp = "1501668289957"
    sha1 = "335bdc0fbd47de9bbf1f7f77fdf803ab1821f5ed"
    md5 = "c7692bed2591603442c19b087213f737"
    assert auth(api, auth_body(sign=sha1, timestamp=stamp))["code"] == 0
    assert auth(api, auth_body(method="hmacmd5", sign=md5, timestamp=stamp))["code"] == 0
    # no signmethod: hmacmd5 (the documented default)
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


# -- Aliyun: /topic -----------------------------------------------------------------------------


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
