# The interactive API (fota.ota) as a user types it in a REPL, on both runtimes: a manual update
# from a URL served by nginx, status, confirm after the reboot, rollback; errors are one event
# line and a None result, never a traceback.

import binascii
import hashlib
import json
import os

import esp32
import espidf
from dual import new_board, rmtree

from fota import ota
from fota.app import events

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"


def _served_image(version, size):
    data = espidf.make_app_image(version, size=size)
    name = "ota-api-%s-%s.bin" % (version, binascii.hexlify(os.urandom(4)).decode())
    with open(os.getenv("FOTA_TEST_FILES") + "/" + name, "wb") as f:
        f.write(data)
    return os.getenv("FOTA_TEST_NGINX") + "/" + name, data


def _reboot(path):
    esp32.detach()
    flash = espidf.Flash(path)
    part, rolled_back = espidf.bootloader(flash, espidf.CHIP_IDS["esp32"])
    flash.close()
    esp32.attach(path, "esp32", part[0])
    return part[0]


def test_manual_update_status_confirm_and_rollback():
    tmp, path = new_board(version="1.0.0")
    root = tmp + "/"
    try:
        url, data = _served_image("2.0.0", 50000)
        md5 = binascii.hexlify(hashlib.md5(data).digest()).decode()
        assert ota.update(url, md5="0" * 32, allow_http=True, root=root) is None  # wrong digest
        assert ota.status(root=root)["next_boot"] == "ota_0"
        # the size is probed when not given; plain http only when asked for
        assert ota.update(url, md5=md5, root=root) is None
        assert ota.update(url, md5=md5, allow_http=True, root=root) == "2.0.0"
        info = ota.status(root=root)
        assert info["running"] == "ota_0" and info["version"] == "1.0.0"
        assert info["next_boot"] == "ota_1" and info["pending"]["target"] == "2.0.0"
        assert _reboot(path) == "ota_1"
        assert ota.status(root=root)["version"] == "2.0.0"
        assert ota.confirm(root=root) is True
        assert _reboot(path) == "ota_1"  # confirmed: no rollback at the next reset
        assert ota.rollback(root=root) == "1.0.0"
        assert _reboot(path) == "ota_0"
        assert ota.status(root=root)["version"] == "1.0.0"
    finally:
        esp32.detach()
        rmtree(tmp)


def _settle(root):
    """What the agent does at every boot, without a cloud: settle the update in flight."""
    from fota.core.store import Store
    from fota.core.update import Updater

    board = ota._board(root)[0]
    updater = Updater(None, None, Store(root + "fota.state"))
    return updater.after_boot(board.running_version(), board.confirm)


def _run_2_0_0(root, path):
    """A manual update to 2.0.0, the boot into it and the agent's confirmation."""
    url, data = _served_image("2.0.0", 40000)
    md5 = binascii.hexlify(hashlib.md5(data).digest()).decode()
    assert ota.update(url, md5=md5, allow_http=True, root=root) == "2.0.0"
    assert _reboot(path) == "ota_1" and _settle(root) == "confirmed"


def test_rollback_is_durable_across_resets_once_the_agent_settled_it():
    tmp, path = new_board(version="1.0.0")
    root = tmp + "/"
    try:
        _run_2_0_0(root, path)
        assert ota.rollback(root=root) == "1.0.0"
        assert ota.status(root=root)["next_boot"] == "ota_0"  # what the next reset boots
        assert _reboot(path) == "ota_0"
        assert _settle(root) == "confirmed"  # the agent keeps the image it was sent back to
        for _ in range(3):
            assert _reboot(path) == "ota_0"
            assert _settle(root) is None
        assert ota.status(root=root)["next_boot"] == "ota_0"
    finally:
        esp32.detach()
        rmtree(tmp)


def test_an_unconfirmed_rollback_goes_back_at_the_next_reset():
    # what made the rollback durable is the confirmation at the boot into it
    tmp, path = new_board(version="1.0.0")
    root = tmp + "/"
    try:
        _run_2_0_0(root, path)
        assert ota.rollback(root=root) == "1.0.0"
        assert _reboot(path) == "ota_0"
        assert _reboot(path) == "ota_1"
    finally:
        esp32.detach()
        rmtree(tmp)


def _errors_of(fn, *args, **kwargs):
    seen = []
    listener = events.subscribe(lambda kind, info: seen.append((kind, info)))
    try:
        result = fn(*args, **kwargs)
    finally:
        events.unsubscribe(listener)
    return result, [info for kind, info in seen if kind == "error"], [k for k, _ in seen]


def test_bad_arguments_are_one_error_event_each_never_a_traceback():
    tmp, path = new_board(version="1.0.0")
    root = tmp + "/"
    try:
        url, data = _served_image("2.0.0", 20000)
        cases = (
            ((None,), {"md5": "0" * 32}, "url"),
            ((42,), {"md5": "0" * 32}, "url"),
            ((url,), {"md5": 123}, "md5"),
            ((url,), {"md5": "0" * 32, "size": "20000"}, "size"),
            ((url,), {}, "md5= or sha256="),
            ((url,), {"md5": "0" * 32, "ca": "/certs/none.der"}, "/certs/none.der"),
            (("https://127.0.0.1:1/fw.bin",), {"md5": "0" * 32, "ca": 5}, "ca"),
        )
        for args, kwargs, words in cases:
            result, errs, _ = _errors_of(ota.update, *args, root=root, **kwargs)
            assert result is None and len(errs) == 1, (args, kwargs, errs)
            assert errs[0]["reason"] == "config" and words in errs[0]["error"], errs
        assert ota.status(root=root)["next_boot"] == "ota_0"  # nothing was switched
    finally:
        esp32.detach()
        rmtree(tmp)


def test_update_follows_the_configs_allow_http_and_reports_each_step_once():
    tmp, path = new_board(version="1.0.0")
    root = tmp + "/"
    try:
        url, data = _served_image("2.0.0", 150000)
        md5 = binascii.hexlify(hashlib.md5(data).digest()).decode()
        result, errs, kinds = _errors_of(ota.update, url, md5=md5, root=root)
        assert result is None and "allow_http" in errs[0]["error"]  # no /ota.json: http is off
        config = {
            "cloud": "onenet",
            "server": "http://127.0.0.1:1",
            "allow_http": True,
            "window": 32768,
            "onenet": {"product_id": "1", "device_id": "2", "key": "a2V5"},
        }
        with open(root + "ota.json", "w") as f:
            f.write(json.dumps(config))
        result, errs, kinds = _errors_of(
            ota.update, url, md5=md5, root=root, path=root + "ota.json"
        )
        assert result == "2.0.0" and errs == [], errs
        assert kinds.count("verified") == 1 and kinds.count("start") == 1
        assert kinds.count("progress") >= 3  # one per 32 KB window reached
    finally:
        esp32.detach()
        rmtree(tmp)
