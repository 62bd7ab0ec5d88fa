# The Sagoo emulator (tools/emu/sagoo.py) on CPython: the AK/SK signature and its vectors,
# get_ota_info, the file URL's Range answers and the batch state machine. Clients are
# http.client (emuclient.py).

import hashlib
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import emu  # noqa: E402
from emu import sagoo  # noqa: E402
from emuclient import (  # noqa: E402
    Api,
    info,
    sagoo_query,
    write,
)
from emufixtures import IMAGE, N  # noqa: E402

# -- Sagoo --------------------------------------------------------------------------------------


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
