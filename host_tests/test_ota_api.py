# The interactive API (fota.ota) as a user types it in a REPL, on both runtimes: a manual update
# from a URL served by nginx, status, confirm after the reboot, rollback; errors are one event
# line and a None result, never a traceback.

import binascii
import hashlib
import os

import esp32
import espidf
from dual import new_board, rmtree

from fota import ota

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
        assert ota.rollback(root=root) is True
        assert _reboot(path) == "ota_0"
        assert ota.status(root=root)["version"] == "1.0.0"
    finally:
        esp32.detach()
        rmtree(tmp)
