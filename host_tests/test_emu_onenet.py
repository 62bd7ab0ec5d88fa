# The OneNET emulators (tools/emu/onenet.py, onenet_fuse.py) on CPython: the token and its
# vectors, OneNET's Range rules, the legacy API's check and task state machine, the fuse API's flow.
# Clients are http.client and raw sockets (emuclient.py).

import hashlib
import json
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import emu  # noqa: E402
from emu import onenet_token, ranges  # noqa: E402
from emuclient import (  # noqa: E402
    DEV,
    DEV_KEY,
    FUSE,
    KEY,
    Api,
    check,
    progress,
    read_to_close,
    started,
    task,
    token,
    token_check,
)
from emufixtures import IMAGE, N  # noqa: E402

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


# -- OneNET Range rules -------------------------------------------------------------------------


RANGES = [
    (None, None),
    ("bytes=0-5", (0, 5)),  # OneNET's example
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
    assert progress(onenet, tok, 54) == 17  # 0..100 only while downloading (OneNET's 说明 1, 3)
    assert token_check(onenet, tok)["errno"] == 0
    assert task(onenet)["state"] == "downloading"
    assert progress(onenet, tok, 54) == 0
    assert progress(onenet, tok, 100) == 0  # OneNET's 说明 2: 100 -> upgrading
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
    assert onenet.json("POST", path, {"s_version": "V1.3"}, token())["errno"] == 0  # OneNET's
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
