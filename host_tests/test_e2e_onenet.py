# OneNET legacy OTA end to end, on both runtimes: the agent's OneNET client, engine and slot
# writer against the OneNET emulator (tools/emu/onenet.py), asserting the requests exactly as
# the cloud saw them (its request log) and the task state it ends in.

import e2e
import emuctl
from dual import fails

from fota.clouds.onenet import OneNet
from fota.core import errors

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"
MICROPYTHON_TIMEOUT = 90

ENV = "FOTA_TEST_ONENET"


def _rig(cfg=None, **kw):
    return e2e.Rig(ENV, OneNet, dict(cfg or e2e.ONENET), **kw)


def _story(log):
    return e2e.onenet_story(log, "errno")


def test_update_reports_exactly_what_onenets_docs_describe():
    rig = _rig(size=120000)
    try:
        # journal commits every 2 blocks, inside the 32 KiB windows: progress still waits for
        # the end of a window, since its report goes over the same client and connection
        assert rig.updater(journal_blocks=2).run("1.0.0") == "activated"
        assert rig.slot_bytes() == rig.image and rig.boot_label() == "ota_1"
        assert "retry" not in e2e.kinds(rig.events)
        story = _story(rig.log())
        assert story[0] == ("check", 0)
        assert story[1] == ("token_check", 0)
        downloads = [d for e, d in story if e == "download"]
        assert downloads == ["bytes=0-32767", "bytes=32768-65535", "bytes=65536-98303",
                             "bytes=98304-119999"]  # fmt: skip
        steps = [d for e, d in story if e == "progress"]
        assert [s // 25 for s in steps[:-1]] == [1, 2, 3] and steps[-1] == 101
        assert rig.state()["task"]["state"] == "upgrading"
        # the reboot into 2.0.0: health check, confirm, 201 and the version report
        assert rig.reboot() == ("ota_1", False)
        before = len(rig.log())
        assert rig.updater().after_boot("2.0.0", rig.confirm, rig.healthy) == "confirmed"
        after = _story(rig.log()[before:])
        assert after[0][0] == "check"  # the health check reaches the cloud
        assert after[1:] == [("progress", 201), ("version", {"f_version": "2.0.0"})]
        state = rig.state()
        assert state["task"]["state"] == "completed"
        assert state["device"]["f_version"] == "2.0.0"
        # nothing is reported twice at the next boot
        rig.reboot()
        assert rig.updater().after_boot("2.0.0", rig.confirm) is None
        assert len(rig.log()) == before + 3
    finally:
        rig.close()


def test_no_update_is_errno_11_and_nothing_else():
    rig = _rig(image=False)
    try:
        assert rig.updater().run("1.0.0") == "none"
        assert _story(rig.log()) == [("check", 11)]
    finally:
        rig.close()


def test_bad_signature_is_an_auth_error_and_nothing_is_written():
    cfg = dict(e2e.ONENET)
    cfg["key"] = e2e.ONENET_DEVICE_KEY  # a real key, but not the product's
    rig = _rig(cfg)
    try:
        err = fails(errors.AUTH, rig.updater().run, "1.0.0")
        assert "authentication failed" in err.message
        assert _story(rig.log()) == [("check", 1)]
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_device_level_token_is_accepted():
    cfg = dict(e2e.ONENET)
    cfg["key"] = e2e.ONENET_DEVICE_KEY
    cfg["res"] = "products/123123/devices/mydev"
    rig = _rig(cfg, size=20000)
    try:
        assert rig.updater().run("1.0.0") == "activated"
    finally:
        rig.close()


def test_expired_token_is_refused():
    rig = _rig()
    try:
        emuctl.clock(rig.base, 2 * 3600)  # the cloud is two hours ahead: et (now + 1 h) is past
        fails(errors.AUTH, rig.updater().run, "1.0.0")
        assert _story(rig.log()) == [("check", 1)]
    finally:
        rig.close()


def test_wrong_md5_is_reported_as_205_and_the_slot_is_not_switched():
    rig = _rig(size=40000)
    try:
        emuctl.fault(rig.base, kind="wrong_digest")
        assert rig.updater().run("1.0.0") == "failed"
        assert rig.boot_label() == "ota_0"
        steps = [d for e, d in _story(rig.log()) if e == "progress"]
        assert steps[-1] == 205
        assert rig.state()["task"]["state"] == "failed"
        # the failed task is given up: the next poll does not download it again
        before = len(rig.log())
        assert rig.updater().run("1.0.0") in ("skipped", "none")
        assert [e for e, _ in _story(rig.log()[before:])] == ["check"]
    finally:
        rig.close()


def test_cancelled_task_is_given_up_without_retrying_forever():
    rig = _rig()
    try:
        emuctl.task(rig.base, "cancelled")
        assert rig.updater().run("1.0.0") in ("skipped", "none")
        assert rig.updater().run("1.0.0") in ("skipped", "none")
        story = _story(rig.log())
        assert ("progress" not in [e for e, _ in story]) and ("download" not in dict(story))
        assert len([e for e, _ in story if e == "token_check"]) <= 1
    finally:
        rig.close()


def test_one_byte_error_body_is_reported_as_107():
    rig = _rig(size=40000)
    try:
        emuctl.fault(rig.base, kind="error_body", code=3)
        assert rig.updater().run("1.0.0") == "failed"
        failed = [i for k, i in rig.events if k == "failed"][0]
        assert "invalid token" in failed["error"]
        steps = [d for e, d in _story(rig.log()) if e == "progress"]
        assert steps == [107]
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_bare_range_form_and_the_last_request_stays_inside_the_file():
    cfg = dict(e2e.ONENET)
    cfg["range"] = "bare"
    rig = _rig(cfg, size=70000)
    try:
        assert rig.updater(window=16384).run("1.0.0") == "activated"
        ranges = [d for e, d in _story(rig.log()) if e == "download"]
        assert ranges[0] == "0-16383" and ranges[-1] == "65536-69999"
        assert rig.slot_bytes() == rig.image
    finally:
        rig.close()


def test_resume_after_a_dropped_connection_fetches_no_byte_twice():
    rig = _rig(size=120000)
    try:
        emuctl.fault(rig.base, kind="drop", after=40000)
        assert rig.updater(window=65536).run("1.0.0") == "activated"
        assert rig.slot_bytes() == rig.image
        ranges = [d for e, d in _story(rig.log()) if e == "download"]
        assert ranges[0] == "bytes=0-65535"
        assert ranges[1] == "bytes=40000-65535"  # from the first byte not received
        assert "retry" in e2e.kinds(rig.events)
    finally:
        rig.close()
