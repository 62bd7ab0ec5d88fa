# MXCHIP FOG end to end, on both runtimes: the agent's MXCHIP client, engine, ESP32 slot and MCU
# file slot (fota.slots.fileslot) against the MXCHIP emulator (tools/emu/mxchip.py), as the cloud
# saw
# it: the wifi file (this board's firmware) with a reboot, the mcu file through the
# application's hook without one, and the version PUT that is the API's only success report.

import os

import e2e
import emuctl
import esp32
from dual import fails

from fota.clouds.mxchip import Mxchip
from fota.core import errors
from fota.slots import fileslot

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"
MICROPYTHON_TIMEOUT = 90

ENV = "FOTA_TEST_MXCHIP"
MCU_IMAGE = bytes((i * 13 + 7) % 256 for i in range(9000))  # not 4096-aligned on purpose


def _rig(cfg=None, **kw):
    cfg = dict(cfg or e2e.MXCHIP)
    return e2e.Rig(ENV, Mxchip, cfg, cloud_files={"state": "fota.mcu"}, **kw)


def _story(log):
    """The cloud's view, compacted: (endpoint, detail) per request."""
    out = []
    for r in log:
        ep = r["endpoint"]
        if ep == "check":
            q = r["query"]
            out.append((ep, q.get("wifi_version"), q.get("mcu_version")))
        elif ep == "version":
            out.append((ep, r["json"]))
        else:
            out.append((ep, r["range"]))
    return out


def _puts(log):
    return [r["json"] for r in log if r["endpoint"] == "version"]


def _ota_1_erases():
    """Erases of ota_1 since the board was attached (the shim counts them per sector)."""
    info = esp32.Partition("ota_1").info()
    counts = esp32.attached_flash().erase_counts
    return sum(counts[info[2] // 4096 : (info[2] + info[3]) // 4096])


class Hook:
    """The application's MCU hook: reads what it is handed, answers `ok` (or raises)."""

    def __init__(self, ok=True, boom=False):
        self.ok = ok
        self.boom = boom
        self.calls = []

    def __call__(self, path, size, version):
        with open(path, "rb") as f:
            data = f.read(size)
        self.calls.append((size, version, data))
        if self.boom:
            raise OSError(5, "UART timeout")
        return self.ok


def test_wifi_update_and_success_by_the_version_put():
    rig = _rig(size=100000)
    try:
        assert rig.updater().run("1.0.0") == "activated"
        assert rig.slot_bytes() == rig.image and rig.boot_label() == "ota_1"
        log = rig.log()
        check = log[0]
        assert check["path"] == "/api/v1/ota/device/"
        assert check["query"] == {
            "product_id": "test",
            "wifi_version": "1.0.0",
            "mcu_version": "1.0.0",
        }
        assert check["headers"]["authorization"] == "token " + e2e.MXCHIP["token"]
        ranges = [d for e, d in _story(log)[1:]]
        assert ranges[0] == "bytes=0-0"  # the size probe: the check's files carry no size
        assert ranges[1] == "bytes=0-32767" and ranges[-1].endswith("-99999")
        assert _puts(log) == []  # nothing is reported before the new image runs
        state = rig.state()
        assert state["jobs"]["1"]["state"] == "downloading"
        rig.reboot()
        before = len(rig.log())
        assert rig.updater().after_boot("2.0.0", rig.confirm, rig.healthy) == "confirmed"
        after = _story(rig.log()[before:])
        assert after[0] == ("check", "2.0.0", "1.0.0")  # the health check: need_ota false
        assert after[1:] == [
            ("version", {"device_id": "mxdev001", "wifi_version": "2.0.0", "mcu_version": "1.0.0"})
        ]
        state = rig.state()
        assert state["jobs"]["1"]["state"] == "succeeded"
        assert state["device"]["wifi_version"] == "2.0.0"
    finally:
        rig.close()


def test_no_update_and_a_refused_token():
    rig = _rig(image=False)
    try:
        assert rig.updater().run("1.0.0") == "none"
        assert [r["endpoint"] for r in rig.log()] == ["check"]
    finally:
        rig.close()
    cfg = dict(e2e.MXCHIP)
    cfg["token"] = "0" * 40
    rig = _rig(cfg)
    try:
        err = fails(errors.AUTH, rig.updater().run, "1.0.0")
        assert "401" in err.message
        assert rig.log()[0]["answer"]["meta"]["code"] == 1201
    finally:
        rig.close()


def test_wrong_md5_is_a_failure_event_and_no_version_put():
    rig = _rig(size=40000)
    try:
        emuctl.fault(rig.base, kind="wrong_digest")
        assert rig.updater().run("1.0.0") == "failed"
        failed = [i for k, i in rig.events if k == "failed"][0]
        assert failed["reason"] == errors.VERIFY
        assert ("report_unsupported", {"cloud": "mxchip", "result": "failed"}) in rig.events
        assert _puts(rig.log()) == [] and rig.boot_label() == "ota_0"
        assert rig.state()["jobs"]["1"]["state"] != "succeeded"
    finally:
        rig.close()


def test_both_files_mcu_first_through_the_hook_then_wifi_with_a_reboot():
    mcu_path = e2e.data_file(MCU_IMAGE)
    rig = _rig(size=60000, mcu_image=mcu_path, mcu_version="1.1.0")
    hook = Hook()
    fileslot.set_hook(hook)
    try:
        assert rig.mcu_updater().run("1.0.0") == "installed"
        assert hook.calls == [(len(MCU_IMAGE), "1.1.0", MCU_IMAGE)]
        assert rig.boot_label() == "ota_0" and _ota_1_erases() == 0  # no reboot, no slot
        story = _story(rig.log())
        assert story[0] == ("check", "1.0.0", "1.0.0")
        assert story[-1] == (
            "version",
            {"device_id": "mxdev001", "wifi_version": "1.0.0", "mcu_version": "1.1.0"},
        )
        assert "installed" in e2e.kinds(rig.events)
        # the next check says mcu 1.1.0 and gets the wifi file
        before = len(rig.log())
        assert rig.mcu_updater().run("1.0.0") == "activated"
        assert _story(rig.log()[before:])[0] == ("check", "1.0.0", "1.1.0")
        assert rig.slot_bytes() == rig.image
        rig.reboot()
        assert rig.updater().after_boot("2.0.0", rig.confirm, rig.healthy) == "confirmed"
        puts = _puts(rig.log())
        assert puts[-1] == {
            "device_id": "mxdev001",
            "wifi_version": "2.0.0",
            "mcu_version": "1.1.0",
        }
        state = rig.state()
        assert [state["jobs"][k]["state"] for k in ("1", "2")] == ["succeeded", "succeeded"]
        assert state["device"]["mcu_version"] == "1.1.0"
        assert len(hook.calls) == 1
    finally:
        fileslot.set_hook(None)
        rig.close()
        os.remove(mcu_path)


def test_failing_mcu_hook_is_a_failure_and_the_firmware_slot_is_untouched():
    mcu_path = e2e.data_file(MCU_IMAGE)
    rig = _rig(size=40000, mcu_image=mcu_path, mcu_version="1.1.0")
    try:
        for hook in (Hook(ok=False), Hook(boom=True)):
            fileslot.set_hook(hook)
            assert rig.mcu_updater().run("1.0.0") == "failed"
            assert hook.calls == [(len(MCU_IMAGE), "1.1.0", MCU_IMAGE)]  # verified first
            failed = [i for k, i in rig.events if k == "failed"][-1]
            assert failed["reason"] == errors.FLASH and "MCU hook" in failed["error"]
            assert _puts(rig.log()) == []
            assert rig.boot_label() == "ota_0" and _ota_1_erases() == 0
            assert rig.cloud.mcu_version() == "1.0.0"
            # forget the failure (the agent's skip, the client's note), to fail the other way
            rig.store.update(skip=None)
            os.remove(rig.tmp + "/fota.mcu")
        # a failed MCU file does not hold the firmware back: the wifi file goes next
        fileslot.set_hook(Hook(ok=False))
        assert rig.mcu_updater().run("1.0.0") == "failed"
        before = len(rig.log())
        assert rig.mcu_updater().run("1.0.0") == "activated"
        assert [r["endpoint"] for r in rig.log()[before:]][0] == "check"
        assert rig.boot_label() == "ota_1" and rig.slot_bytes() == rig.image
    finally:
        fileslot.set_hook(None)
        rig.close()
        os.remove(mcu_path)


def test_no_hook_registered_is_a_config_failure_before_any_write():
    mcu_path = e2e.data_file(MCU_IMAGE)
    rig = _rig(mcu_image=mcu_path, mcu_version="1.1.0")
    try:
        fileslot.set_hook(None)
        assert rig.mcu_updater().run("1.0.0") == "failed"
        failed = [i for k, i in rig.events if k == "failed"][0]
        assert failed["reason"] == errors.CONFIG
        downloads = [r for r in rig.log() if r["endpoint"] == "download"]
        assert [r["range"] for r in downloads] == ["bytes=0-0"]  # only the size probe
    finally:
        rig.close()
        os.remove(mcu_path)
