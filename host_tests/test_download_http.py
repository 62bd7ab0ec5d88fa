# The download engine through the real HTTP client against real servers: nginx (Range as users
# meet it, plain and TLS) and the fault-injecting server (drops, stalls, ignored or wrong ranges).

import binascii
import hashlib
import os
import sys

import esp32
import espidf
from dual import fails, new_board, raises, rmtree
from fakeclock import FakeClock

from fota.core import errors
from fota.core.download import Downloader
from fota.core.journal import Journal
from fota.core.offer import Offer
from fota.slots.esp32slot import Esp32Slot
from fota.transport.http import Client

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"

_FILES = os.getenv("FOTA_TEST_FILES")
_NGINX = os.getenv("FOTA_TEST_NGINX")
_NGINX_TLS = os.getenv("FOTA_TEST_NGINX_TLS")
_FAULTS = os.getenv("FOTA_TEST_HTTP")


def _image(version, size):
    """A valid image written into the served folder; (name, bytes)."""
    image = espidf.make_app_image(version, size=size)
    name = "fw-%s-%s-%d.bin" % (version, sys.implementation.name, size)
    with open(_FILES + "/" + name, "wb") as f:
        f.write(image)
    return name, image


def _md5(data):
    return binascii.hexlify(hashlib.md5(data).digest()).decode()


class Rig:
    def __init__(self, size=200000, client=None, **options):
        self.tmp, _ = new_board(version="1.0.0")
        self.name, self.image = _image("2.0.0", size)
        self.client = client or Client(allow_http=True, read_timeout=2.0)
        self.clock = FakeClock()
        self.events = []
        self.dl = Downloader(
            self.client,
            Esp32Slot("esp32"),
            Journal(self.tmp + "/fota.journal"),
            self.clock,
            on_event=lambda kind, info: self.events.append((kind, info)),
            **options,
        )

    def offer(self, base, prefix=""):
        url = "%s%s/%s" % (base, prefix, self.name)
        return Offer(url, len(self.image), md5=_md5(self.image), version="2.0.0")

    def slot_ok(self):
        part = esp32.Partition("ota_1")
        buf = bytearray(4096)
        for pos in range(0, len(self.image), 4096):
            part.readblocks(pos // 4096, buf)
            piece = self.image[pos : pos + 4096]
            if buf[: len(piece)] != piece:
                return False
        return True

    def boot_label(self):
        return esp32.Partition(esp32.Partition.BOOT).info()[4]

    def close(self):
        self.client.close()
        esp32.detach()
        rmtree(self.tmp)


def test_nginx_ranges_on_one_kept_alive_connection():
    rig = Rig(size=200000, window=65536)
    try:
        result = rig.dl.run(rig.offer(_NGINX))
        assert result.version == "2.0.0" and rig.slot_ok()
        assert result.requests == 4  # 200000 bytes in 64 KiB windows
        assert rig.client.connects == 1
        assert rig.boot_label() == "ota_1"
    finally:
        rig.close()


def test_nginx_over_verified_tls():
    with open(_FILES + "/ca.der", "rb") as f:
        ca = f.read()
    rig = Rig(size=120000, client=Client(ca=ca, read_timeout=5.0), window=65536)
    try:
        result = rig.dl.run(rig.offer(_NGINX_TLS))
        assert result.version == "2.0.0" and rig.slot_ok()
        assert rig.client.connects == 1
    finally:
        rig.close()


def test_tls_with_the_wrong_ca_switches_nothing():
    with open(_FILES + "/wrong-ca.der", "rb") as f:
        ca = f.read()
    rig = Rig(size=30000, client=Client(ca=ca), retries=1)
    try:
        exc = fails(errors.DOWNLOAD, rig.dl.run, rig.offer(_NGINX_TLS))
        assert "TLS" in exc.message or "certificate" in exc.message
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_range_ignored_by_the_server_is_skipped_not_written():
    rig = Rig(size=90000, window=32768)
    try:
        result = rig.dl.run(rig.offer(_FAULTS, "/ignore-range"))
        assert rig.slot_ok() and result.version == "2.0.0"
        assert result.requests == 1  # the whole file came with the first answer
    finally:
        rig.close()


def test_wrong_content_range_is_refused():
    rig = Rig(size=30000, retries=2, window=16384)
    try:
        exc = fails(errors.DOWNLOAD, rig.dl.run, rig.offer(_FAULTS, "/bad-range"))
        assert "asked for bytes 0-16383, server sent 1-16384" in exc.message
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_bare_onenet_range_form():
    rig = Rig(size=50000, window=16384, bare_range=True)
    try:
        result = rig.dl.run(rig.offer(_FAULTS))
        assert rig.slot_ok() and result.requests == 4
    finally:
        rig.close()


def test_connection_dropped_mid_body_resumes_from_the_bytes_received():
    # Every answer from /drop/40000/ dies after 40000 body bytes: the engine moves on each time.
    rig = Rig(size=150000)
    try:
        result = rig.dl.run(rig.offer(_FAULTS, "/drop/40000"))
        assert rig.slot_ok() and result.version == "2.0.0"
        retries = [info["offset"] for kind, info in rig.events if kind == "retry"]
        assert retries == [40000, 80000, 120000]
        assert rig.clock.slept_ms == 3 * 1000  # progress each time: the backoff starts over
    finally:
        rig.close()


def test_stalled_server_times_out_then_gives_up():
    # The head arrives, then no body byte: no progress, so the retry budget runs out.
    rig = Rig(size=30000, client=Client(allow_http=True, read_timeout=0.3), retries=1)
    try:
        exc = raises(errors.OTAError, rig.dl.run, rig.offer(_FAULTS, "/stall/0"))
        assert exc.reason == errors.TIMEOUT
        assert rig.dl.requests == 2
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_stall_in_the_steady_state_is_a_timeout_then_a_resume():
    # /stall/20000: each answer stops after 20000 body bytes; on MicroPython the engine reads
    # those through the socket's own readinto, whose timeout the transport still names.
    rig = Rig(size=30000, client=Client(allow_http=True, read_timeout=0.2), retries=1)
    try:
        result = rig.dl.run(rig.offer(_FAULTS, "/stall/20000"))
        assert rig.slot_ok() and result.version == "2.0.0"
        retry = [info for kind, info in rig.events if kind == "retry"]
        assert len(retry) == 1 and retry[0]["error"].startswith("timed out: body from ")
        assert 16384 <= retry[0]["offset"] <= 20000
    finally:
        rig.close()


def test_missing_file_is_not_retried():
    rig = Rig(size=30000)
    try:
        offer = rig.offer(_NGINX)
        offer.url = _NGINX + "/no-such-file.bin"
        exc = fails(errors.DOWNLOAD, rig.dl.run, offer)
        assert "HTTP 404" in exc.message and rig.dl.requests == 1
    finally:
        rig.close()


# -- deadlines: a server that sends, but too slowly


def _elapsed_ms(start):
    import time

    if hasattr(time, "ticks_ms"):
        return time.ticks_diff(time.ticks_ms(), start)
    return int(time.monotonic() * 1000) - start


def _now_ms():
    import time

    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)


def test_a_dripping_body_is_a_timeout_then_a_resume():
    # /drip/2/10000: each answer sends 10000 body bytes at once, then one byte every 2 ms. Each
    # request ends at its 0.3 s deadline (the read timeout, 5 s, never fires) and the engine
    # resumes from the bytes it holds; on MicroPython the steady state reads 256-byte chunks
    # with the socket's own readinto and asks the response whether it is late between them.
    rig = Rig(size=30000, client=Client(allow_http=True, read_timeout=5.0, deadline=0.3),
              chunk=256, retries=1)  # fmt: skip
    try:
        result = rig.dl.run(rig.offer(_FAULTS, "/drip/2/10000"))
        assert rig.slot_ok() and result.version == "2.0.0"
        retry = [info for kind, info in rig.events if kind == "retry"]
        assert len(retry) >= 2
        assert all("(over the 0.3 s deadline)" in info["error"] for info in retry), retry
        offsets = [info["offset"] for info in retry]
        assert offsets == sorted(offsets) and offsets[0] >= 10000
        assert rig.boot_label() == "ota_1"
    finally:
        rig.close()


def test_a_drip_without_retries_left_fails_with_timeout():
    rig = Rig(size=30000, client=Client(allow_http=True, read_timeout=5.0, deadline=0.3),
              chunk=256, retries=0)  # fmt: skip
    try:
        start = _now_ms()
        exc = fails(errors.TIMEOUT, rig.dl.run, rig.offer(_FAULTS, "/drip/5/0"))
        assert _elapsed_ms(start) < 3000
        assert exc.retryable and "deadline" in exc.message
        assert rig.dl.requests == 1 and rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_a_stall_ends_at_the_deadline_not_the_read_timeout():
    rig = Rig(size=30000, client=Client(allow_http=True, read_timeout=30.0, deadline=0.3),
              retries=0)  # fmt: skip
    try:
        start = _now_ms()
        exc = fails(errors.TIMEOUT, rig.dl.run, rig.offer(_FAULTS, "/stall/0"))
        assert _elapsed_ms(start) < 3000
        assert "deadline" in exc.message and rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_the_real_fast_path_with_its_deadline_checks_allocates_nothing():
    # The engine locks the heap around each pump (host_tests/heaplock.py): the socket's own
    # readinto and the response's late() between chunks must not allocate.
    from heaplock import LockedDownloader

    rig = Rig(size=300000, window=131072)
    try:
        rig.dl = LockedDownloader(
            rig.client, Esp32Slot("esp32"), Journal(rig.tmp + "/fota.journal"), rig.clock,
            window=131072,
        )  # fmt: skip
        result = rig.dl.run(rig.offer(_NGINX))
        assert result.version == "2.0.0" and rig.slot_ok()
        if sys.implementation.name == "micropython":
            assert rig.dl.pumped_locked >= len(rig.image) * 9 // 10
    finally:
        rig.close()
