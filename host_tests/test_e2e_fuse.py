# OneNET fuse OTA end to end, on both runtimes: the agent's fuse client, engine and slot writer
# against the fuse emulator (tools/emu/onenet_fuse.py), as the cloud saw it.

import e2e
import emuctl
from dual import fails

from fota.clouds.onenet_fuse import OneNetFuse
from fota.core import errors

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"
MICROPYTHON_TIMEOUT = 90

ENV = "FOTA_TEST_ONENET_FUSE"


def _rig(cfg=None, **kw):
    return e2e.Rig(ENV, OneNetFuse, dict(cfg or e2e.ONENET_FUSE), **kw)


def _story(log):
    return e2e.onenet_story(log, "code")


def test_update_with_a_device_token_and_every_answer_checked():
    rig = _rig(size=100000)
    try:
        assert rig.updater().run("1.0.0") == "activated"
        story = _story(rig.log())
        assert story[:2] == [("check", 0), ("task_check", 0)]
        downloads = [r for r in rig.log() if r["endpoint"] == "download"]
        assert all(r["headers"].get("authorization") for r in downloads)
        assert all("res=products%2F123123%2Fdevices%2Fmydev" in r["headers"]["authorization"]
                   for r in downloads)  # fmt: skip
        steps = [d for e, d in story if e == "progress"]
        assert steps[-1] == 101 and 100 not in steps  # never 100 before 101
        rig.reboot()
        before = len(rig.log())
        assert rig.updater().after_boot("2.0.0", rig.confirm, rig.healthy) == "confirmed"
        after = _story(rig.log()[before:])
        assert after[1:] == [("progress", 201), ("version", {"f_version": "2.0.0"})]
        assert rig.state()["task"]["state"] == "completed"
    finally:
        rig.close()


def test_no_task_is_no_update():
    rig = _rig(image=False)
    try:
        assert rig.updater().run("1.0.0") == "none"
        assert [e for e, _ in _story(rig.log())] == ["check"]
    finally:
        rig.close()


def test_ota_errno_on_http_200_stops_the_download_before_a_byte_is_written():
    rig = _rig(size=60000)
    try:
        emuctl.fault(rig.base, kind="error_body", code=4)
        assert rig.updater().run("1.0.0") == "failed"
        failed = [i for k, i in rig.events if k == "failed"][0]
        assert "Ota-Errno 4" in failed["error"]
        assert [d for e, d in _story(rig.log()) if e == "progress"] == [107]
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_bad_signature_and_expired_token_are_auth_errors():
    cfg = dict(e2e.ONENET_FUSE)
    cfg["key"] = e2e.ONENET["key"]  # the product key signing a device-level res
    rig = _rig(cfg)
    try:
        fails(errors.AUTH, rig.updater().run, "1.0.0")
        rig.cfg = dict(e2e.ONENET_FUSE)
        rig.new_client()
        emuctl.clock(rig.base, 2 * 3600)
        fails(errors.AUTH, rig.updater().run, "1.0.0")
    finally:
        rig.close()


def test_finished_task_is_given_up():
    rig = _rig()
    try:
        emuctl.task(rig.base, "cancelled")
        assert rig.updater().run("1.0.0") in ("skipped", "none")
        assert rig.updater().run("1.0.0") in ("skipped", "none")
        assert "download" not in [e for e, _ in _story(rig.log())]
    finally:
        rig.close()


def test_wrong_md5_is_205():
    rig = _rig(size=30000)
    try:
        emuctl.fault(rig.base, kind="wrong_digest")
        assert rig.updater().run("1.0.0") == "failed"
        assert [d for e, d in _story(rig.log()) if e == "progress"][-1] == 205
    finally:
        rig.close()
