# The update cycle (fota.core.update) with a scripted cloud and the in-memory Range server, on the
# esp32 shim: policies, the report owed to the cloud across failures and reboots, the task given
# up, and the settlement after the reboot (confirm, rollback, cut download).

import binascii
import hashlib

import esp32
import espidf
from dual import new_board, rmtree
from fakeclock import FakeClock
from fakehttp import FakeClient, FakeResponse

from fota.core import errors
from fota.core.download import Downloader
from fota.core.journal import Journal
from fota.core.offer import Offer
from fota.core.store import Store
from fota.core.update import Updater
from fota.slots.esp32slot import Esp32Slot

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"


class ScriptedCloud:
    """Answers check() with `offer`; records every report; raise_on[name] makes a call fail."""

    def __init__(self, offer):
        self.offer = offer
        self.calls = []
        self.raise_on = {}

    def _maybe_raise(self, name):
        exc = self.raise_on.get(name)
        if exc is not None:
            raise exc

    def check(self, version):
        self.calls.append(("check", version))
        self._maybe_raise("check")
        return self.offer

    def start(self, offer):
        self.calls.append(("start", offer.job))
        self._maybe_raise("start")

    def progress(self, job, percent):
        self.calls.append(("progress", percent))

    def downloaded(self, job):
        self.calls.append(("downloaded", job))
        self._maybe_raise("downloaded")

    def failed(self, job, error, stage):
        self._maybe_raise("failed")
        self.calls.append(("failed", job, error.reason, stage))

    def succeeded(self, job, version):
        self._maybe_raise("succeeded")
        self.calls.append(("succeeded", job, version))

    def reports(self):
        return [c for c in self.calls if c[0] in ("failed", "succeeded", "downloaded")]


class Rig:
    def __init__(self, target="2.0.0", size=60000, md5=None):
        self.tmp, self.path = new_board(version="1.0.0")
        self.image = espidf.make_app_image(target, size=size)
        digest = md5 or binascii.hexlify(hashlib.md5(self.image).digest()).decode()
        self.offer = Offer(
            "http://ota.example/fw", len(self.image), md5=digest, version=target, job={"t": 7},
            key="task-7",
        )  # fmt: skip
        self.cloud = ScriptedCloud(self.offer)
        self.client = FakeClient(self.image)
        self.events = []
        self.store = Store(self.tmp + "/fota.state")

    def updater(self, **options):
        dl = Downloader(
            self.client,
            Esp32Slot("esp32"),
            Journal(self.tmp + "/fota.journal"),
            FakeClock(),
            window=16384,
            progress_step=25,
            on_event=lambda kind, info: (
                self.cloud.progress(None, info["percent"]) if kind == "progress" else None
            ),
        )
        return Updater(self.cloud, dl, self.store, lambda k, i: self.events.append(k), **options)

    def reboot(self):
        """The emulated bootloader, then the shim attached to what it booted."""
        esp32.detach()
        flash = espidf.Flash(self.path)
        part, rolled_back = espidf.bootloader(flash, espidf.CHIP_IDS["esp32"])
        flash.close()
        esp32.attach(self.path, "esp32", part[0])
        return part[0], rolled_back

    def close(self):
        esp32.detach()
        rmtree(self.tmp)


def _confirm():
    esp32.Partition.mark_app_valid_cancel_rollback()


def test_update_activates_reports_and_confirms_after_the_reboot():
    rig = Rig()
    try:
        assert rig.updater().run("1.0.0") == "activated"
        assert rig.cloud.reports() == [("downloaded", {"t": 7})]
        percents = [c[1] for c in rig.cloud.calls if c[0] == "progress"]
        assert [p // 25 for p in percents] == [1, 2, 3]  # one per progress_step, never 100
        assert rig.store.load()["pending"]["activated"] is True
        assert rig.reboot() == ("ota_1", False)
        assert rig.updater().after_boot("2.0.0", _confirm, lambda: True) == "confirmed"
        assert rig.cloud.reports()[-1] == ("succeeded", {"t": 7}, "2.0.0")
        assert rig.store.load() == {}
        # the next boot: nothing in flight, nothing reported again
        assert rig.reboot() == ("ota_1", False)
        assert rig.updater().after_boot("2.0.0", _confirm) is None
        assert len(rig.cloud.reports()) == 2
        assert rig.events[:2] == ["offer", "start"]
    finally:
        rig.close()


def test_unconfirmed_image_rolls_back_and_reports_the_failure_once():
    rig = Rig()
    try:
        rig.updater().run("1.0.0")
        assert rig.reboot() == ("ota_1", False)
        # the new image fails its health check: not confirmed
        assert rig.updater().after_boot("2.0.0", _confirm, lambda: False) == "unhealthy"
        assert rig.reboot() == ("ota_0", True)  # the bootloader aborts it
        assert rig.updater().after_boot("1.0.0", _confirm) == "rolled_back"
        assert rig.cloud.reports()[-1] == ("failed", {"t": 7}, errors.ROLLBACK, "upgrade")
        # the same task is offered again: given up, not installed again
        assert rig.updater().run("1.0.0") == "skipped"
        assert len([r for r in rig.cloud.reports() if r[0] == "failed"]) == 1
    finally:
        rig.close()


def test_wrong_digest_fails_before_activation_and_is_not_retried():
    rig = Rig(md5="0" * 32)
    try:
        assert rig.updater().run("1.0.0") == "failed"
        assert rig.cloud.reports() == [("failed", {"t": 7}, errors.VERIFY, "download")]
        assert esp32.Partition(esp32.Partition.BOOT).info()[4] == "ota_0"
        assert rig.updater().run("1.0.0") == "skipped"
        assert len(rig.cloud.reports()) == 1
    finally:
        rig.close()


def test_report_owed_survives_a_failed_report_and_goes_out_once():
    rig = Rig(md5="0" * 32)
    try:
        rig.cloud.raise_on["failed"] = errors.OTAError(errors.DOWNLOAD, "network down")
        assert rig.updater().run("1.0.0") == "failed"
        assert rig.cloud.reports() == []
        assert rig.store.load()["outcome"]["result"] == "failed"
        assert "report_failed" in rig.events
        del rig.cloud.raise_on["failed"]
        # next poll: the owed report first, then the check (the task is given up)
        assert rig.updater().run("1.0.0") == "skipped"
        assert rig.cloud.reports() == [("failed", {"t": 7}, errors.VERIFY, "download")]
        assert "outcome" not in rig.store.load()
    finally:
        rig.close()


def test_downgrade_is_refused_unless_allowed():
    rig = Rig(target="0.9.0")
    try:
        assert rig.updater().run("1.0.0") == "failed"
        assert rig.cloud.reports() == [("failed", {"t": 7}, errors.VERSION, "download")]
        assert ("start", {"t": 7}) not in rig.cloud.calls
        assert esp32.attached_flash().erase_counts[0x190000 // 4096] == 0  # nothing erased
    finally:
        rig.close()
    rig = Rig(target="0.9.0")
    try:
        assert rig.updater(allow_downgrade=True).run("1.0.0") == "activated"
    finally:
        rig.close()


def test_same_version_offered_again_reports_success_without_download():
    rig = Rig(target="1.0.0")
    try:
        assert rig.updater().run("1.0.0") == "none"
        assert rig.cloud.reports() == [("succeeded", {"t": 7}, "1.0.0")]
        assert rig.client.requests == []
    finally:
        rig.close()


def test_task_the_cloud_refuses_is_given_up_without_a_report():
    rig = Rig()
    try:
        rig.cloud.raise_on["start"] = errors.OTAError(errors.REJECTED, "task cancelled")
        assert rig.updater().run("1.0.0") == "skipped"
        assert rig.updater().run("1.0.0") == "skipped"
        assert [c[0] for c in rig.cloud.calls].count("start") == 1
        assert rig.cloud.reports() == []
        rig.cloud.offer = Offer(rig.offer.url, rig.offer.size, md5=rig.offer.md5, version="2.0.0",
                                job={"t": 8})  # fmt: skip
        del rig.cloud.raise_on["start"]
        assert rig.updater().run("1.0.0") == "activated"  # a new task is taken
    finally:
        rig.close()


def test_power_cut_during_download_leaves_nothing_to_report_and_resumes():
    rig = Rig(size=100000)
    try:
        rig.client.drop_after(40000)
        updater = rig.updater()
        updater.downloader.retries = 0
        # a drop with no retries left behaves like a cut for the store: "failed" is retryable
        assert updater.run("1.0.0") == "failed"
        assert rig.store.load().get("skip") is None  # retryable: the task stays wanted
        rig.reboot()
        assert rig.updater().after_boot("1.0.0", _confirm) is None
        assert rig.updater().run("1.0.0") == "activated"
    finally:
        rig.close()


def test_no_update_is_quiet():
    rig = Rig()
    try:
        rig.cloud.offer = None
        assert rig.updater().run("1.0.0") == "none"
        assert rig.cloud.reports() == [] and rig.events == ["no_update"]
    finally:
        rig.close()


def test_out_of_memory_for_the_download_is_reported_and_the_offer_tried_again():
    # The engine's buffer does not fit this time: the cloud hears of the failure (its code for a
    # lack of memory), the slot is untouched, and the next poll tries the same offer again
    # instead of giving it up as it does a wrong digest.
    rig = Rig()
    try:
        updater = rig.updater()
        ready = updater.downloader

        def hungry(offer):
            raise MemoryError()

        updater.downloader = hungry
        assert updater.run("1.0.0") == "failed"
        assert rig.cloud.reports() == [("failed", {"t": 7}, errors.NO_MEMORY, "download")]
        assert esp32.Partition(esp32.Partition.BOOT).info()[4] == "ota_0"
        updater.downloader = ready
        assert updater.run("1.0.0") == "activated"
        assert esp32.Partition(esp32.Partition.BOOT).info()[4] == "ota_1"
    finally:
        rig.close()


def test_an_offer_field_of_the_wrong_type_is_the_clouds_failure_and_never_written():
    # what clouds have been seen to send: numbers or lists where strings belong
    for field, value in (
        ("version", 200),
        ("version", ["2.0.0"]),
        ("url", 42),
        ("md5", 123),
        ("size", "60000"),
        ("size", -1),
        ("md5", None),  # and no sha256: nothing to verify with
    ):
        rig = Rig()
        try:
            setattr(rig.offer, field, value)
            before = len(rig.client.requests)
            assert rig.updater().run("1.0.0") == "failed", (field, value)
            assert rig.cloud.reports() == [("failed", {"t": 7}, errors.PROTOCOL, "download")]
            assert "start" not in [c[0] for c in rig.cloud.calls], (field, value)
            assert len(rig.client.requests) == before  # nothing downloaded
            assert esp32.Partition(esp32.Partition.BOOT).info()[4] == "ota_0"
            assert rig.updater().run("1.0.0") == "skipped"  # the same offer: given up
        finally:
            rig.close()


class _Flaky(FakeClient):
    """Answers 503 to its first `bad` requests, then serves the image."""

    def __init__(self, data, bad):
        super().__init__(data)
        self.bad = bad

    def get_range(self, url, start, end, bare=False, headers=None, keep=None):
        if self.bad:
            self.bad -= 1
            self.requests.append((start, end, bare))
            return FakeResponse(self, 503, None, None, None, 0)
        return super().get_range(url, start, end, bare, headers, keep)


def test_the_size_probe_is_retried_like_the_download():
    # Sagoo and MXCHIP give no size: a 5xx on the one-byte probe is not the update's end
    rig = Rig()
    try:
        rig.offer.size = None
        rig.client = _Flaky(rig.image, bad=2)
        assert rig.updater().run("1.0.0") == "activated"
        assert rig.offer.size == len(rig.image)
        assert rig.client.requests[:3] == [(0, 0, False)] * 3  # two 503s, then the probe
        assert rig.cloud.reports()[-1][0] == "downloaded"
    finally:
        rig.close()


def test_a_failure_that_may_heal_is_reported_and_the_offer_tried_again_at_the_next_poll():
    # a certificate, a server or the flash can be fixed: such an offer is not given up, unlike
    # one whose digest is wrong (test_wrong_digest_fails_before_activation_and_is_not_retried)
    rig = Rig()
    try:
        rig.client.mode = "status"
        rig.client.status_code = 404  # not retried now (retryable=False), but not the offer's fault
        assert rig.updater().run("1.0.0") == "failed"
        assert rig.cloud.reports() == [("failed", {"t": 7}, errors.DOWNLOAD, "download")]
        rig.client.mode = "range"
        assert rig.updater().run("1.0.0") == "activated"
    finally:
        rig.close()
