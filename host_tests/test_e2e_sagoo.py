# Sagoo end to end, on both runtimes: the agent's Sagoo client, engine and slot writer against
# the Sagoo emulator (tools/emu/sagoo.py), as the cloud saw it.

import e2e
import emuctl
from dual import fails

from fota.clouds.sagoo import Sagoo
from fota.core import errors

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"
MICROPYTHON_TIMEOUT = 90

ENV = "FOTA_TEST_SAGOO"


def _rig(cfg=None, **kw):
    return e2e.Rig(ENV, Sagoo, dict(cfg or e2e.SAGOO), **kw)


def _reports(log):
    """write_ota_info bodies as the cloud got them."""
    return [r["json"] for r in log if r["endpoint"] == "progress"]


def _steps(log):
    out = []
    for body in _reports(log):
        params = body.get("params", body)
        out.append(params["step"])
    return out


def test_update_with_wrapped_reports_and_the_batch_strategy():
    rig = _rig(size=100000, strategy=25)
    try:
        assert rig.updater().run("1.0.0") == "activated"
        log = rig.log()
        check = log[0]
        assert check["endpoint"] == "check"
        query = check["query"]
        assert query["deviceKey"] == "dev001" and query["version"] == "1.0.0"
        assert query["ak"] == "iotak" and len(query["sign"]) == 64 and query["appId"] == "fota"
        assert "sk" not in query
        reports = _reports(log)
        assert all(set(r) == {"params"} for r in reports)
        assert all(r["params"]["strategy"] == "25" for r in reports)
        assert all(r["params"]["deviceKey"] == "dev001" for r in reports)
        steps = _steps(log)
        assert steps[-1] == "100" and all(isinstance(s, str) for s in steps)
        assert [int(s) // 25 for s in steps[:-1]] == [1, 2, 3]
        rig.reboot()
        assert rig.updater().after_boot("2.0.0", rig.confirm, rig.healthy) == "confirmed"
        state = rig.state()
        assert state["batch"]["state"] == "completed"
        assert state["reported"]["default"] == "2.0.0"
    finally:
        rig.close()


def test_flat_body_for_older_servers():
    cfg = dict(e2e.SAGOO)
    cfg["body"] = "flat"
    rig = _rig(cfg, size=30000, flat_body_only=True)
    try:
        assert rig.updater().run("1.0.0") == "activated"
        reports = _reports(rig.log())
        assert reports and all("params" not in r and r["module"] == "default" for r in reports)
    finally:
        rig.close()


def test_sha256_sign_method_in_any_case():
    rig = _rig(size=30000, sign_method="sha256")
    try:
        assert rig.updater().run("1.0.0") == "activated"
        assert rig.slot_bytes() == rig.image
    finally:
        rig.close()


def test_wrong_sign_is_reported_as_minus_3():
    rig = _rig(size=30000)
    try:
        emuctl.fault(rig.base, kind="wrong_digest")
        assert rig.updater().run("1.0.0") == "failed"
        assert _steps(rig.log())[-1] == "-3"
        assert rig.state()["batch"]["state"] == "failed"
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_dropped_download_is_resumed_and_a_dead_server_reported_as_minus_2():
    rig = _rig(size=100000)
    try:
        # the next two downloads: the size probe (1 byte, unharmed), then the first window
        emuctl.fault(rig.base, kind="drop", after=20000, times=2)
        assert rig.updater().run("1.0.0") == "activated"
        ranges = [r["range"] for r in rig.log() if r["endpoint"] == "download"]
        assert ranges[:3] == ["bytes=0-0", "bytes=0-32767", "bytes=20000-32767"]
    finally:
        rig.close()
    rig = _rig(size=30000)
    try:
        emuctl.fault(rig.base, kind="status", status=503, times=20, on="download")
        assert rig.updater(retries=2).run("1.0.0") == "failed"
        assert _steps(rig.log())[-1] == "-2"
    finally:
        rig.close()


def test_bad_secret_and_old_timestamp_are_refused():
    cfg = dict(e2e.SAGOO)
    cfg["sk"] = "not-the-secret"
    rig = _rig(cfg)
    try:
        err = fails(errors.AUTH, rig.updater().run, "1.0.0")
        assert "61" in err.message
    finally:
        rig.close()
    rig = _rig(max_skew_s=300)
    try:
        emuctl.clock(rig.base, 3600)
        fails(errors.AUTH, rig.updater().run, "1.0.0")
    finally:
        rig.close()


def test_no_update():
    rig = _rig(image=False)
    try:
        assert rig.updater().run("1.0.0") == "none"
        assert [r["endpoint"] for r in rig.log()] == ["check"]
    finally:
        rig.close()
