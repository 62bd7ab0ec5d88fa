# End-to-end rig for the cloud tests, on both runtimes: a board on the esp32 shim running 1.0.0,
# a cloud emulator (tools/emu, started by netfixtures) serving a 2.0.0 image as the pending
# update, and the agent's own pieces wired as the app wires them: fota.transport.http.Client, the
# cloud
# client, the Downloader with the ESP32 slot, the Updater with its Store. reboot() runs the
# emulated bootloader and attaches the shim to the slot it chose, as a reset would.

import os
import sys
import time

import emuctl
import esp32
import espidf
from dual import new_board, rmtree
from fakeclock import FakeClock

from fota.core.download import Downloader
from fota.core.journal import Journal
from fota.core.store import Store
from fota.core.update import Updater
from fota.slots.esp32slot import Esp32Slot
from fota.transport.http import Client

_counter = [0]

ONENET = {
    "product_id": "123123",
    "device_id": "522747162",
    "device_name": "mydev",
    "key": "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw=",
}
ONENET_DEVICE_KEY = "iLItnGVvZyXkvDxWDTDnG1x4qENBpu6/gbQ7LDx+XAo="
# the fuse API with the device's own key (res products/{pid}/devices/{name}, the default)
ONENET_FUSE = {"product_id": "123123", "device_name": "mydev", "key": ONENET_DEVICE_KEY}
SAGOO = {"device_key": "dev001", "ak": "iotak", "sk": "iotsk20200907", "app_id": "fota"}
MXCHIP = {
    "product_id": "test",
    "device_id": "mxdev001",
    "token": "d79be1d657d9a8b45f6f903620e84b06cbf225e0",
    "mcu_version": "1.0.0",
}
ALIYUN = {
    "product_key": "ZG1EvTEa7NN",
    "device_name": "NlwaSPXsCpTQuh8FxBGH",
    "device_secret": "secret",
}


def data_file(data):
    """Any bytes (e.g. an attached MCU's image) written into the served folder -> the path."""
    _counter[0] += 1
    name = "e2e-data-%s-%s-%d.bin" % (sys.implementation.name, os.urandom(4).hex(), _counter[0])
    path = os.getenv("FOTA_TEST_FILES") + "/" + name
    with open(path, "wb") as f:
        f.write(data)
    return path


def image_file(version, size):
    """A valid 2.0.0-style image written into the served folder -> (absolute path, bytes)."""
    _counter[0] += 1
    data = espidf.make_app_image(version, size=size)
    tag = os.urandom(4).hex()
    name = "e2e-%s-%s-%s-%d.bin" % (version, sys.implementation.name, tag, _counter[0])
    path = os.getenv("FOTA_TEST_FILES") + "/" + name
    with open(path, "wb") as f:
        f.write(data)
    return path, data


class Rig:
    """cloud_cls(client, server, cfg, clock, on_event); base: the emulator's URL.

    cloud_files: {keyword: file name}: files the cloud client keeps (the MCU's
    version), passed to cloud_cls as keyword=<the board's folder>/<file name>."""

    def __init__(
        self,
        env,
        cloud_cls,
        cfg,
        size=120000,
        version="2.0.0",
        image=True,
        cloud_files=None,
        **reset,
    ):
        self.base = os.getenv(env)
        self.tmp, self.flash = new_board(version="1.0.0")
        self.image_path, self.image = image_file(version, size)
        if image:
            emuctl.reset(self.base, image=self.image_path, version=version, **reset)
        else:
            emuctl.reset(self.base, image=None, **reset)
        self.cloud_cls = cloud_cls
        self.cfg = cfg
        self.cloud_kw = {k: self.tmp + "/" + v for k, v in (cloud_files or {}).items()}
        self.events = []
        self.store = Store(self.tmp + "/fota.state")
        self.options = {"window": 32768, "progress_step": 25, "backoff_ms": 10}
        self.new_client()

    def new_client(self):
        self.client = Client(allow_http=True, read_timeout=2.0)
        self.cloud = self.cloud_cls(
            self.client, self.base, self.cfg, time, self._event, **self.cloud_kw
        )

    def _event(self, kind, info):
        self.events.append((kind, info))

    def _engine_event(self, kind, info):
        self._event(kind, info)
        if kind == "progress" and self._job is not None:
            self.cloud.progress(self._job, info["percent"])

    def _update_event(self, kind, info):
        if kind == "start":
            self._job = info.get("job")
        self._event(kind, info)

    def updater(self, **options):
        self._job = None
        opts = dict(self.options)
        opts.update(options)
        dl = Downloader(
            self.client,
            Esp32Slot("esp32"),
            Journal(self.tmp + "/fota.journal"),
            FakeClock(),
            bare_range=getattr(self.cloud, "bare_range", False),
            on_event=self._engine_event,
            **opts,
        )
        return Updater(self.cloud, dl, self.store, self._update_event)

    def mcu_updater(self, capacity=262144, **options):
        """An Updater whose downloader is made per offer, as fota.app.agent makes it: offers that
        need no reboot (an attached MCU's image) go to a FileSlot at <board>/mcu.bin, handed
        to the hook of fota.slots.fileslot.set_hook; the others to the ESP32 slot."""
        from fota.slots.fileslot import FileSlot

        self._job = None
        opts = dict(self.options)
        opts.update(options)
        self.mcu_path = self.tmp + "/mcu.bin"

        def downloader(offer):
            if offer.reboot:
                slot = Esp32Slot("esp32")
            else:
                slot = FileSlot(self.mcu_path, capacity, offer.version)
            return Downloader(
                self.client,
                slot,
                Journal(self.tmp + "/fota.journal"),
                FakeClock(),
                bare_range=getattr(self.cloud, "bare_range", False),
                on_event=self._engine_event,
                **opts,
            )

        return Updater(self.cloud, downloader, self.store, self._update_event)

    def reboot(self):
        """The emulated bootloader, then the shim attached to what it booted -> (label, rolled
        back). The client's connections die with the board."""
        self.client.close()
        esp32.detach()
        flash = espidf.Flash(self.flash)
        part, rolled_back = espidf.bootloader(flash, espidf.CHIP_IDS["esp32"])
        flash.close()
        esp32.attach(self.flash, "esp32", part[0])
        self.new_client()
        return part[0], rolled_back

    def confirm(self):
        esp32.Partition.mark_app_valid_cancel_rollback()

    def healthy(self):
        try:
            self.cloud.check("2.0.0")
            return True
        except Exception:
            return False

    def log(self):
        return emuctl.log(self.base)

    def state(self):
        return emuctl.state(self.base)

    def slot_bytes(self, label="ota_1"):
        buf = bytearray(len(self.image))
        esp32.Partition(label).readblocks(0, buf)
        return bytes(buf)

    def boot_label(self):
        return esp32.Partition(esp32.Partition.BOOT).info()[4]

    def close(self):
        self.client.close()
        esp32.detach()
        rmtree(self.tmp)
        try:
            os.remove(self.image_path)
        except OSError:
            pass


def onenet_story(log, code):
    """A OneNET emulator's view, compacted: (endpoint, detail) per request; detail is the step
    of a progress report, the Range of a download, the body of a version report, else the
    answer's `code` field (errno for the legacy API, code for fuse)."""
    out = []
    for r in log:
        ep = r["endpoint"]
        if ep == "progress":
            out.append((ep, r["json"]["step"]))
        elif ep == "download":
            out.append((ep, r["range"]))
        elif ep == "version":
            out.append((ep, r["json"]))
        else:
            out.append((ep, r["answer"][code] if r["answer"] else None))
    return out


def kinds(events):
    return [k for k, _ in events]
