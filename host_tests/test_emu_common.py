# What every cloud emulator shares (tools/emu/base.py, control.py, server.py, tools/emulator.py)
# on CPython: each fault kind (also over TLS), the request log, the control API and its clock, the
# Python API's errors, the instances netfixtures.py starts, and the command line. Clients are
# http.client and raw sockets (emuclient.py).

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
from emuclient import (  # noqa: E402
    DEV,
    FUSE,
    KEY,
    PK,
    TOKEN,
    Api,
    assert_quiet,
    check,
    firmware_get,
    info,
    mx_check,
    progress,
    read_head,
    read_to_close,
    started,
    task,
    token,
    token_check,
    token_of,
    write,
)
from emufixtures import IMAGE, N  # noqa: E402

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


def test_python_api_errors_of_mxchip_and_aliyun(images):
    with pytest.raises(emu.EmuError, match="unknown option"):
        emu.start("aliyun", colour="red")
    with pytest.raises(emu.EmuError, match="cannot read image"):
        emu.start("mxchip", image=images[0], version="2", mcu_image="/nonexistent", mcu_version="1")
    with emu.start("mxchip", token="t0k", product_id="p1") as server:
        api = Api(server.url)
        path = "/api/v1/ota/device/?product_id=p1&wifi_version=1&mcu_version=1"
        assert api.json("GET", path, headers={"Authorization": "token t0k"})["meta"]["code"] == 0


def test_netfixtures_announce_the_emulators():
    for env, cloud in (
        ("FOTA_TEST_ONENET", "onenet"),
        ("FOTA_TEST_ONENET_FUSE", "onenet-fuse"),
        ("FOTA_TEST_SAGOO", "sagoo"),
        ("FOTA_TEST_ONENET_TLS", "onenet"),
    ):
        assert Api(os.environ[env]).ctl("")["cloud"] == cloud


def test_netfixtures_announce_mxchip_and_aliyun():
    for env, cloud in (("FOTA_TEST_MXCHIP", "mxchip"), ("FOTA_TEST_ALIYUN", "aliyun")):
        info = Api(os.environ[env]).ctl("")
        assert info["cloud"] == cloud and info["endpoints"]
    assert Api(os.environ["FOTA_TEST_ALIYUN"]).ctl("")["device_secret"] == "secret"


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
        assert info_["key"] == KEY and info_["device_id"] == "522747162"
        assert info_["control"] == info_["url"] + "/_emu"
        api = Api(info_["url"])
        assert check(api)["data"]["size"] == N
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_cli_serves_mxchip_and_aliyun(images):
    wifi, mcu = images
    runs = (
        ["mxchip", "--image", wifi, "--version", "2.0", "--port", "0"]
        + ["--mcu-image", mcu, "--mcu-version", "1"],
        ["aliyun", "--image", wifi, "--version", "2.0.0", "--token-lifetime-s", "60"]
        + ["--port", "0"],
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
        ([], "usage:"),
        (["onenet", "--image", "x.bin"], "usage:"),
        (["nimbus"], "usage:"),
        (["sagoo", "--image", "/nonexistent.bin", "--version", "1"], "emulator: cannot read"),
        (["onenet", "--image", __file__, "--version", "1", "--tls-cert", "a"], "go together"),
        (["mxchip", "--image", __file__, "--version", "1", "--mcu-version", "2"], "needs an mcu"),
        (["aliyun", "--image", __file__, "--version", "1", "--sign-method", "crc"], "sign_method"),
        (["aliyun", "--image", __file__], "usage:"),
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


# -- a real board on the network ------------------------------------------------------------------


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _app_image(tmp_path, version):
    import espidf

    path = tmp_path / ("app-%s.bin" % version)
    path.write_bytes(espidf.make_app_image(version, size=20000))
    return str(path)


def test_cli_port_is_fixed_and_a_wildcard_host_is_never_advertised(tmp_path):
    import emulator

    args = emulator._parser().parse_args(["sagoo", "--image", "x", "--version", "1"])
    assert args.port == 8080 and args.host == "127.0.0.1"  # the same URL at every start
    port = _free_port()
    proc = subprocess.Popen(
        CLI + ["onenet", "--image", _app_image(tmp_path, "2.0.0"), "--version", "2.0.0"]
        + ["--host", "0.0.0.0", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = json.loads(_readline(proc, 20))
        url = urlsplit(first["url"])
        assert url.port == port and url.hostname not in ("0.0.0.0", "")
        assert url.hostname == emu.server.advertised("0.0.0.0")
        assert first["control"] == first["url"] + "/_emu"
        # reachable on loopback too, since it listens on every address
        assert check(Api("http://127.0.0.1:%d" % port))["data"]["size"] == 20000
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    with emu.start("sagoo", host="0.0.0.0", url_host="board-host.lan") as server:
        assert server.url == "http://board-host.lan:%d" % urlsplit(server.url).port


def test_cli_prints_one_line_per_device_request(tmp_path):
    proc = subprocess.Popen(
        CLI + ["onenet", "--image", _app_image(tmp_path, "2.0.0"), "--version", "2.0.0"]
        + ["--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        api = Api(json.loads(_readline(proc, 20))["url"])
        tok = check(api)["data"]["token"]
        api.request("GET", "/ota/south/download/" + tok, headers={"Range": "bytes=0-9"})
        api.request("GET", "/nowhere")
        api.ctl("state")  # control requests are not device requests: no line
    finally:
        # a request's line is printed on the server's loop before its stop runs there
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3, out
    assert lines[0]["request"].startswith("GET /ota/south/check?dev_id=522747162&")
    assert (lines[0]["endpoint"], lines[0]["status"], lines[0]["fault"]) == ("check", 200, None)
    assert lines[1] == {"request": "GET /ota/south/download/" + tok, "endpoint": "download",
                        "status": 206, "range": "bytes=0-9", "fault": None}  # fmt: skip
    assert lines[2]["request"] == "GET /nowhere" and lines[2]["status"] == 404


@pytest.mark.parametrize("cloud", sorted(emu.CLOUDS))
def test_the_printed_config_is_one_the_agent_accepts_with_the_emulators_credentials(cloud):
    from fota.app import config

    with emu.start(cloud) as server:
        info_ = server.info()
    cfg = config.validate(info_["config"])  # the agent's own start-up check
    assert cfg["server"] == server.url and cfg["allow_http"] is True
    section = cfg["cloud_row"][3]
    for key, value in info_["config"][section].items():
        if not (cloud == "onenet-fuse" and key == "key"):
            assert info_[key] == value  # the credential goes by the config's key name
    if cloud == "onenet":
        assert {"product_id", "device_id", "key"} <= set(info_)
        assert "dev_id" not in info_ and "access_key" not in info_


def test_an_image_whose_app_descriptor_names_another_version_is_refused(tmp_path):
    old = _app_image(tmp_path, "1.0.0")
    args = ["sagoo", "--image", old, "--version", "2.0.0", "--port", "0"]
    proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("emulator: image %s: its app descriptor says version 1.0.0, "
                                  "not 2.0.0" % old)  # fmt: skip
    with emu.start("sagoo", image=_app_image(tmp_path, "2.0.0"), version="2.0.0") as server:
        api = Api(server.url)
        error = api.ctl_error("reset", {"image": old, "version": "2.0.0"})  # 400, no change
        assert "its app descriptor says version 1.0.0, not 2.0.0" in error
        assert api.ctl("state")["image"]["version"] == "2.0.0"
        assert api.reset(image=old, version="2.0.0", any_version=True)["image"]["path"] == old
    # a file that is no app image (an MCU's) is served as it is
    with emu.start("sagoo", image=__file__, version="7") as server:
        assert Api(server.url).ctl("state")["image"]["version"] == "7"


def test_help_texts_cite_no_document_the_user_does_not_have():
    for cloud in [None, *sorted(emu.CLOUDS)]:
        argv = CLI + ([cloud] if cloud else []) + ["--help"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout.lower()
        for word in ("seed", "protocols", ".md", "docstring", "toolchain-notes"):
            assert word not in text, (cloud, word)
    top = subprocess.run(CLI + ["--help"], capture_output=True, text=True, timeout=30).stdout
    assert "onenet-fuse" in top and "-o FILE" in top  # the clouds and how to make an image


def test_an_mcuboot_image_is_refused_when_its_header_names_another_version(tmp_path):
    import mcuimage
    from emu.records import ControlError, Image

    path = tmp_path / "app.signed.bin"
    mcuimage.build(path, "2.1.0", 8192)
    assert Image(str(path), "2.1.0").version == "2.1.0"
    try:
        Image(str(path), "2.2.0")
        raise AssertionError("served an image whose header says 2.1.0 as 2.2.0")
    except ControlError as exc:
        assert "its MCUboot header says version 2.1.0, not 2.2.0" in str(exc)
    assert Image(str(path), "2.2.0", any_version=True).version == "2.2.0"
