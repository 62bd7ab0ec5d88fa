# Aliyun IoT's HTTP channel end to end, on both runtimes: the agent's Aliyun client, engine and
# slot writer against the Aliyun emulator (tools/emu/aliyun.py): /auth, the token renewal,
# firmware/get -> download -> progress -> reboot -> the inform that alone makes the job succeed.

import json
import os

import e2e
import emuctl
from dual import fails

from fota.clouds import aliyun
from fota.clouds.aliyun import Aliyun
from fota.core import errors

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"
MICROPYTHON_TIMEOUT = 90

ENV = "FOTA_TEST_ALIYUN"
PK, DN = e2e.ALIYUN["product_key"], e2e.ALIYUN["device_name"]


def _rig(cfg=None, **kw):
    cfg = dict(cfg or e2e.ALIYUN)
    return e2e.Rig(ENV, Aliyun, cfg, **kw)


def _story(log):
    """(endpoint, detail) per request: the answer's code, a progress step, an informed version."""
    out = []
    for r in log:
        ep = r["endpoint"]
        code = r["answer"]["code"] if r["answer"] else None
        if ep == "progress" and code == 0:
            out.append((ep, r["json"]["params"]["step"]))
        elif ep == "inform" and code == 0:
            out.append((ep, r["json"]["params"]["version"]))
        elif ep == "download":
            out.append((ep, r["status"]))
        else:
            out.append((ep, code))
    return out


def _steps(log):
    """The progress steps the cloud took (refused reports left out)."""
    return [d for e, d in _story(log) if e == "progress" and isinstance(d, str)]


def _rising_to_100(steps):
    """Download percentages as strings, rising, then "100" once the image is verified."""
    numbers = [int(s) for s in steps]
    return steps[-1] == "100" and numbers == sorted(set(numbers)) and 0 < numbers[0] < 100


def test_update_succeeds_only_by_the_inform_of_the_target():
    rig = _rig(size=100000)
    try:
        assert rig.updater().run("1.0.0") == "activated"
        assert rig.slot_bytes() == rig.image and rig.boot_label() == "ota_1"
        log = rig.log()
        story = _story(log)
        assert story[:2] == [("auth", 0), ("check", 0)]
        auth = log[0]
        assert auth["headers"]["content-type"] == "application/json"
        assert int(auth["headers"]["content-length"]) == auth["body_len"]
        body = auth["json"]
        assert body["signmethod"] == "hmacsha1" and body["clientId"] == PK + "." + DN
        assert body["sign"] == aliyun.sign("secret", {k: body[k] for k in
            ("clientId", "deviceName", "productKey", "timestamp")})  # fmt: skip
        token = auth["answer"]["info"]["token"]
        get = log[1]
        assert get["path"] == "/topic/sys/%s/%s/thing/ota/firmware/get" % (PK, DN)
        assert get["json"]["method"] == "thing.ota.firmware.get" and get["json"]["version"] == "1.0"
        assert get["answer"]["info"]["data"]["version"] == "2.0.0"
        publishes = [r for r in log if r["endpoint"] in ("check", "progress", "inform")]
        assert all(r["headers"]["password"] == token for r in publishes)
        assert all(r["headers"]["content-type"] == "application/octet-stream" for r in publishes)
        assert [d for e, d in story if e == "download"] == [206, 206, 206, 206]  # no size probe
        assert _rising_to_100(_steps(log)) and len(_steps(log)) >= 3
        assert rig.state()["job"]["state"] == "upgrading"  # 100 % is not success
        rig.reboot()
        before = len(rig.log())
        assert rig.updater().after_boot("2.0.0", rig.confirm, rig.healthy) == "confirmed"
        after = _story(rig.log()[before:])
        # a new boot authenticates again: no token was kept on flash
        assert after == [("auth", 0), ("check", 0), ("inform", "2.0.0")]
        state = rig.state()
        assert state["job"]["state"] == "succeeded" and state["device"] == {"default": "2.0.0"}
        assert state["ignored"] == []
    finally:
        rig.close()


def _file_holds(path, needle):
    """needle somewhere in the file at path (read in pieces: a flash image is megabytes)."""
    try:
        f = open(path, "rb")
    except OSError:  # a folder
        return False
    with f:
        tail = b""
        while True:
            piece = f.read(65536)
            if not piece:
                return False
            if needle in tail + piece:
                return True
            tail = piece[-len(needle) :]


def test_token_expiring_mid_update_is_renewed_and_never_written_to_flash():
    rig = _rig(size=100000, token_lifetime_s=60)
    try:
        progress = rig.cloud.progress
        calls = []

        def progress_later(job, percent):
            calls.append(percent)
            if len(calls) == 2:  # between two progress reports the token's minute runs out
                emuctl.clock(rig.base, 120)
            progress(job, percent)

        rig.cloud.progress = progress_later
        assert rig.updater().run("1.0.0") == "activated"
        story = _story(rig.log())
        assert story[:2] == [("auth", 0), ("check", 0)]
        i = story.index(("progress", 20001))  # the first report after the shift
        assert ("progress", str(calls[0])) in story[:i]  # the token was good until then
        assert story[i + 1] == ("auth", 0) and story[i + 2] == ("progress", str(calls[1]))
        assert _rising_to_100(_steps(rig.log()))
        tokens = [r["answer"]["info"]["token"] for r in rig.log() if r["endpoint"] == "auth"]
        assert len(tokens) == 2
        # the reboot: a new client authenticates; no file the agent wrote holds a token
        rig.reboot()
        before = len(rig.log())
        assert rig.updater().after_boot("2.0.0", rig.confirm, rig.healthy) == "confirmed"
        after = rig.log()[before:]
        assert [r["endpoint"] for r in after] == ["auth", "check", "inform"]
        token = after[0]["answer"]["info"]["token"]
        assert token not in tokens and all(r["headers"]["password"] == token for r in after[1:])
        for name in os.listdir(rig.tmp):  # the board's files and its flash image
            for t in tokens + [token]:
                assert not _file_holds(rig.tmp + "/" + name, t.encode()), name
        assert rig.state()["job"]["state"] == "succeeded"
    finally:
        rig.close()


def test_unknown_token_after_a_cloud_reset_is_renewed():
    rig = _rig(image=False)
    try:
        assert rig.updater().run("1.0.0") == "none"
        assert _story(rig.log()) == [("auth", 0), ("check", 0)]
        emuctl.reset(rig.base, image=rig.image_path, version="2.0.0")  # forgets every token
        assert rig.updater().run("1.0.0") == "activated"
        assert _story(rig.log())[:3] == [("check", 20003), ("auth", 0), ("check", 0)]
    finally:
        rig.close()


def test_wrong_sign_is_reported_as_minus_3():
    rig = _rig(size=40000)
    try:
        emuctl.fault(rig.base, kind="wrong_digest")
        assert rig.updater().run("1.0.0") == "failed"
        reports = [r["json"]["params"] for r in rig.log() if r["endpoint"] == "progress"]
        assert reports[-1]["step"] == "-3" and "md5" in reports[-1]["desc"]
        state = rig.state()
        assert state["job"]["state"] == "failed" and state["job"]["last_step"] == "-3"
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_sha256_sign_method_and_a_module():
    cfg = dict(e2e.ALIYUN)
    cfg["module"] = "app"
    cfg["sign_method"] = "hmacmd5"
    rig = _rig(cfg, size=30000, module="app", sign_method="SHA256")
    try:
        assert rig.updater().run("1.0.0") == "activated"
        log = rig.log()
        assert log[0]["json"]["signmethod"] == "hmacmd5"
        assert log[1]["json"]["params"] == {"module": "app"}
        data = log[1]["answer"]["info"]["data"]
        assert data["signMethod"] == "SHA256" and "md5" not in data
        reports = [r["json"]["params"] for r in log if r["endpoint"] == "progress"]
        assert all(p["module"] == "app" for p in reports)
        rig.reboot()
        assert rig.updater().after_boot("2.0.0", rig.confirm, rig.healthy) == "confirmed"
        inform = rig.log()[-1]["json"]["params"]
        assert inform == {"version": "2.0.0", "module": "app"}
        assert rig.state()["job"]["state"] == "succeeded"
    finally:
        rig.close()


def test_128_kb_limit_is_checked_before_sending():
    rig = _rig(image=False)
    try:
        topic = "/%s/%s/user/update" % (PK, DN)
        err = fails(errors.PROTOCOL, rig.cloud.publish, topic, {"x": "a" * (128 * 1024)})
        assert "128 KB" in err.message
        assert rig.log() == []  # not even an /auth
        payload = {"x": "a" * (128 * 1024 - 20)}
        assert len(json.dumps(payload)) <= 128 * 1024
        assert rig.cloud.publish(topic, payload) is None
        assert _story(rig.log()) == [("auth", 0), ("publish", 0)]
    finally:
        rig.close()


def test_offer_from_push_fed_a_push_message_from_the_emulator():
    rig = _rig(size=50000)
    try:
        rig.cloud.report_version("1.0.0")  # the version inform of a boot
        push = rig.state()["push"]
        assert push["code"] == "1000" and push["data"]["version"] == "2.0.0"
        offer = aliyun.offer_from_push(push)  # as an MQTT subscription would feed it
        assert (offer.size, offer.version, offer.module) == (50000, "2.0.0", "default")
        assert offer.md5 == push["data"]["md5"] and offer.job == {"module": "default"}
        assert rig.updater().install(offer, "1.0.0") == "activated"
        assert _rising_to_100(_steps(rig.log()))
        rig.reboot()
        assert rig.updater().after_boot("2.0.0", rig.confirm, rig.healthy) == "confirmed"
        state = rig.state()
        assert state["job"]["state"] == "succeeded" and state["push"] is None
    finally:
        rig.close()


def test_refusals_bad_secret_and_rate_limit():
    cfg = dict(e2e.ALIYUN)
    cfg["device_secret"] = "not-the-secret"
    rig = _rig(cfg)
    try:
        err = fails(errors.AUTH, rig.updater().run, "1.0.0")
        assert "20000" in err.message
    finally:
        rig.close()
    rig = _rig()
    try:
        emuctl.fault(rig.base, kind="code", code=40000)
        err = fails(errors.DOWNLOAD, rig.updater().run, "1.0.0")
        assert err.retryable and "40000" in err.message
        assert rig.updater().run("1.0.0") == "activated"  # the next poll goes through
    finally:
        rig.close()
