# The MXCHIP FOG emulator (tools/emu/mxchip.py, mxchip_admin.py) on CPython: auth, the device
# check and version report, the management API's round trip (oss token, upload, files
# create/list/get/update/delete), upload refusals, file ranges and faults. Clients are http.client
# (emuclient.py).

import base64
import hashlib
import http.client
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from emuclient import (  # noqa: E402
    AUTH,
    FILES,
    TIMEOUT,
    TOKEN,
    mx_check,
    mx_put,
    new_file,
    oss_upload,
)
from emufixtures import MCU, WIFI  # noqa: E402

# -- MXCHIP: device API -------------------------------------------------------------------------


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
    # the API notes' example URL, /api/v1/ota/devce/ (sic)
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
    # the errors of the API notes' tables
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
