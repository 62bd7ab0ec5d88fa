# The download engine against an in-memory Range server: every rule of the ranged stream, the
# verification before the slot switch, resume after drops and power cuts, and no allocation in
# the steady-state loop (unix port).

import binascii
import hashlib

import esp32
import espidf
from dual import fails, is_micropython, new_board, raises, rmtree
from fakeclock import FakeClock
from fakehttp import FakeClient, FakeResponse
from heaplock import LockedDownloader

from fota.core import errors
from fota.core.download import Downloader
from fota.core.journal import Journal
from fota.core.offer import Offer
from fota.slots.esp32slot import Esp32Slot

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"

_SLOT_SECTOR = 0x190000 // 4096  # ota_1 in the esp32 profile


def _hex(h):
    return binascii.hexlify(h.digest()).decode()


class Rig:
    """A board running 1.0.0, an image of `version`, the engine wired to a fake server."""

    def __init__(self, version="2.0.0", size=100000, client_mode="range", **options):
        self.tmp, self.path = new_board(version="1.0.0")
        self.image = espidf.make_app_image(version, size=size)
        self.client = FakeClient(self.image, client_mode)
        self.clock = FakeClock()
        self.events = []
        self.options = options
        self.journal_path = self.tmp + "/fota.journal"
        self.offer = Offer(
            "http://ota.example/fw.bin",
            len(self.image),
            md5=_hex(hashlib.md5(self.image)).upper(),  # clouds send either case
            version=version,
        )

    def downloader(self, client=None, slot=None):
        options = dict(self.options)
        engine = LockedDownloader if options.pop("lock_heap", False) else Downloader
        return engine(
            client or self.client,
            slot or Esp32Slot("esp32"),
            Journal(self.journal_path),
            self.clock,
            on_event=lambda kind, info: self.events.append((kind, info)),
            **options,
        )

    def run(self, **kw):
        return self.downloader(**kw).run(self.offer)

    def slot_bytes(self, n=None):
        n = len(self.image) if n is None else n
        buf = bytearray(n)
        esp32.Partition("ota_1").readblocks(0, buf)
        return bytes(buf)

    def boot_label(self):
        return esp32.Partition(esp32.Partition.BOOT).info()[4]

    def erases(self):
        """Erase count of each sector of the image's extent in ota_1."""
        counts = esp32.attached_flash().erase_counts
        blocks = (len(self.image) + 4095) // 4096
        return [counts[_SLOT_SECTOR + i] for i in range(blocks)]

    def journal_exists(self):
        try:
            open(self.journal_path).close()
            return True
        except OSError:
            return False

    def close(self):
        esp32.detach()
        rmtree(self.tmp)


def test_download_verifies_and_switches_the_slot():
    rig = Rig()
    try:
        result = rig.run()
        assert result.version == "2.0.0" and result.size == len(rig.image)
        assert rig.slot_bytes() == rig.image
        assert rig.boot_label() == "ota_1"
        assert esp32.Partition(esp32.Partition.RUNNING).info()[4] == "ota_0"
        assert rig.erases() == [1] * len(rig.erases())  # each block erased once
        assert not rig.journal_exists()
        kinds = [kind for kind, _ in rig.events]
        assert kinds[-1] == "verified"
        percents = [info["percent"] for kind, info in rig.events if kind == "progress"]
        assert percents == sorted(percents) and len(percents) <= 10
    finally:
        rig.close()


def test_any_chunk_size_fills_whole_blocks():
    for chunk in (1000, 4096, 6000, 16384):
        rig = Rig(size=70000, chunk=chunk, window=8192)
        try:
            rig.run()
            assert rig.slot_bytes() == rig.image, chunk
            assert rig.erases() == [1] * len(rig.erases()), chunk
        finally:
            rig.close()


def test_range_requests_stay_within_the_file_and_can_be_bare():
    rig = Rig(size=50000, window=16384, bare_range=True)
    try:
        rig.run()
        size = len(rig.image)
        assert len(rig.client.requests) == (size + 16383) // 16384
        for start, end, bare in rig.client.requests:
            assert bare is True
            assert 0 <= start <= end <= size - 1  # never past the last byte (OneNET's rule)
        assert rig.client.requests[-1][1] == size - 1
    finally:
        rig.close()


def test_server_ignoring_range_never_writes_wrong_bytes():
    rig = Rig(size=60000, window=16384, client_mode="ignore")
    try:
        rig.client.drop_after(20000)  # the first answer dies; the retry gets 200 from byte 0 again
        rig.run()
        assert rig.slot_bytes() == rig.image
        assert rig.erases() == [1] * len(rig.erases())
        assert len(rig.client.requests) == 2
    finally:
        rig.close()


def test_trickling_server_still_lands_every_byte():
    rig = Rig(size=40000, chunk=4096)
    try:
        rig.client.short_reads = True
        rig.run()
        assert rig.slot_bytes() == rig.image
    finally:
        rig.close()


def test_mismatched_content_range_is_refused():
    rig = Rig(size=30000, client_mode="wrong-range", retries=2)
    try:
        exc = fails(errors.DOWNLOAD, rig.run)
        assert "asked for bytes 0-" in exc.message and not exc.retryable
        assert len(rig.client.requests) == 1  # a server that answers so does it again: no retry
        assert rig.erases() == [0] * len(rig.erases())  # nothing was written
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_server_file_of_another_size_fails_verification_at_once():
    rig = Rig(size=30000)
    try:
        rig.client.total = len(rig.image) + 10
        exc = fails(errors.VERIFY, rig.run)
        assert "the offer says %d" % len(rig.image) in exc.message
        assert len(rig.client.requests) == 1
    finally:
        rig.close()


def test_unsatisfiable_range_is_a_verify_failure():
    # 416: the server's file ends before the offset asked for, so it is not the offered image.
    rig = Rig(size=30000, client_mode="status")
    try:
        rig.client.status_code = 416
        exc = fails(errors.VERIFY, rig.run)
        assert "shorter than the offered" in exc.message
        assert len(rig.client.requests) == 1
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_wrong_digest_keeps_the_running_firmware():
    rig = Rig(size=30000)
    try:
        rig.offer.md5 = "0" * 32
        exc = fails(errors.VERIFY, rig.run)
        assert exc.reason == errors.VERIFY and "md5 mismatch" in exc.message
        assert rig.boot_label() == "ota_0"
        rig.offer.md5 = None
        rig.offer.sha256 = _hex(hashlib.sha256(rig.image + b"x"))
        exc = fails(errors.VERIFY, rig.run)
        assert "sha256 mismatch" in exc.message
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_offer_is_refused_before_anything_is_erased():
    rig = Rig(size=30000)
    try:
        big = Offer("http://ota.example/fw.bin", 0x180000 + 1, md5="a" * 32)
        exc = fails(errors.NO_SPACE, rig.downloader().run, big)
        assert exc.reason == errors.NO_SPACE
        bad = Offer("http://ota.example/fw.bin", 1000, md5="xyz")
        assert fails(errors.PROTOCOL, rig.downloader().run, bad) is not None
        bare = Offer("http://ota.example/fw.bin", 1000)
        assert "no md5 or sha256" in fails(errors.PROTOCOL, rig.downloader().run, bare).message
        assert rig.client.requests == []
        assert sum(esp32.attached_flash().erase_counts) == 0
    finally:
        rig.close()


def test_image_of_another_version_is_refused():
    rig = Rig(size=30000)
    try:
        rig.offer.version = "2.0.1"
        exc = fails(errors.VERSION, rig.run)
        assert "2.0.0" in exc.message and "2.0.1" in exc.message
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_http_errors_retry_only_when_it_can_help():
    rig = Rig(size=30000, client_mode="status", retries=3)
    try:
        rig.client.status_code = 404
        assert "HTTP 404" in fails(errors.DOWNLOAD, rig.run).message
        assert len(rig.client.requests) == 1
        rig.client.requests = []
        rig.client.status_code = 503
        fails(errors.DOWNLOAD, rig.run)
        assert len(rig.client.requests) == 4
        assert rig.clock.slept_ms == 1000 + 2000 + 4000  # exponential backoff, virtual time
    finally:
        rig.close()


def test_dropped_connections_resume_without_rewriting_a_block():
    for cut in (1, 4095, 4096, 20000, 61439):
        for timeout in (False, True):
            rig = Rig(size=70000, window=32768)
            try:
                rig.client.drop_after(cut, timeout)
                result = rig.run()
                assert result.version == "2.0.0"
                assert rig.slot_bytes() == rig.image
                assert rig.erases() == [1] * len(rig.erases()), (cut, rig.erases())
                assert rig.client.sent == len(rig.image)  # not one byte fetched twice
                retry = [info for kind, info in rig.events if kind == "retry"]
                assert len(retry) == 1 and retry[0]["offset"] == cut
            finally:
                rig.close()


class PowerCut(BaseException):
    """The supply goes away: nothing after this point runs (the engine catches Exception only)."""


class CutSlot(Esp32Slot):
    def __init__(self, writes_before_cut):
        super().__init__("esp32")
        self.left = writes_before_cut

    def write(self, block, buf):
        if self.left == 0:
            raise PowerCut()
        self.left -= 1
        super().write(block, buf)

    def writer(self):  # every write counts, the steady state's too
        return self.write


def _cut_power(rig, writes):
    try:
        rig.run(slot=CutSlot(writes))
    except PowerCut:
        return
    raise AssertionError("the power cut did not happen")


def test_power_cut_resumes_from_the_journal_after_reboot():
    for writes in (0, 3, 4, 9, 17):
        rig = Rig(size=90000, journal_blocks=4)
        try:
            _cut_power(rig, writes)
            committed = (writes // 4) * 4 * 4096  # the journal is written every 4 blocks
            fetched = rig.client.sent
            rig.client.sent = 0
            before = len(rig.client.requests)
            result = rig.run()  # the next boot: a new engine, the same offer
            assert result.resumed_from == committed
            assert rig.slot_bytes() == rig.image
            assert rig.client.requests[before][0] == committed  # the first request after reboot
            assert rig.client.sent == len(rig.image) - committed
            erases = rig.erases()
            # Only blocks written after the last journal commit are written again.
            rewritten = [i for i, c in enumerate(erases) if c > 1]
            assert len(rewritten) <= 4 and max(erases) <= 2, erases
            assert [c for c in erases if c == 0] == []
            assert fetched >= writes * 4096
        finally:
            rig.close()


def test_journal_every_block_means_at_most_one_block_again():
    rig = Rig(size=90000, journal_blocks=1)
    try:
        _cut_power(rig, 7)
        result = rig.run()
        assert result.resumed_from == 7 * 4096
        assert sum(1 for c in rig.erases() if c > 1) == 0
        assert rig.slot_bytes() == rig.image
    finally:
        rig.close()


def test_another_offer_after_a_power_cut_starts_over():
    rig = Rig(size=60000, journal_blocks=2)
    try:
        _cut_power(rig, 6)
        assert rig.journal_exists()
        newer = espidf.make_app_image("2.0.1", size=60000)
        rig.client.data = newer
        rig.offer = Offer(
            rig.offer.url, len(newer), sha256=_hex(hashlib.sha256(newer)), version="2.0.1"
        )
        result = rig.run()
        assert result.resumed_from == 0 and result.version == "2.0.1"
        buf = bytearray(len(newer))
        esp32.Partition("ota_1").readblocks(0, buf)
        assert bytes(buf) == newer
    finally:
        rig.close()


class HungrySlot(Esp32Slot):
    def write(self, block, buf):
        raise MemoryError()

    def writer(self):  # every write counts, the steady state's too
        return self.write


class _FailingPartition:
    """ota_1, whose writeblocks fails with EIO from block `at` on (a worn or locked flash)."""

    def __init__(self, at):
        self.part = esp32.Partition("ota_1")
        self.at = at
        self.writes = 0

    def writeblocks(self, block, buf, offset=None):
        self.writes += 1
        if block >= self.at:
            raise OSError(5, "EIO")
        self.part.writeblocks(block, buf)

    def __getattr__(self, name):
        return getattr(self.part, name)


def test_a_flash_write_failure_in_the_steady_state_is_a_flash_error_not_a_retry():
    # The steady state writes with the partition's own writeblocks: its OSError must still come
    # out as the slot's FlashError, never as a network failure that the engine would retry.
    rig = Rig(size=60000, chunk=1024)
    try:
        part = _FailingPartition(at=5)
        exc = fails(errors.FLASH, rig.run, slot=Esp32Slot("esp32", part))
        assert exc.reason == errors.FLASH
        assert "writing block 5 of ota_1" in exc.message
        assert part.writes == 6  # blocks 0..5: nothing after the failure
        assert len(rig.client.requests) == 1  # not retried
        assert rig.boot_label() == "ota_0"
        assert [kind for kind, _ in rig.events if kind == "retry"] == []
    finally:
        rig.close()


def test_out_of_memory_is_reported_as_such():
    rig = Rig(size=30000)
    try:
        exc = raises(errors.OTAError, rig.run, slot=HungrySlot("esp32"))
        assert exc.reason == errors.NO_MEMORY
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_steady_state_loop_allocates_nothing():
    # On the unix port the test's engine locks the heap around every _pump: any allocation
    # inside it raises MemoryError and fails the download. On CPython: the plumbing only.
    rig = Rig(size=300000, chunk=4096, window=131072, lock_heap=True)
    try:
        dl = rig.downloader()
        result = dl.run(rig.offer)
        assert result.version == "2.0.0"
        assert rig.slot_bytes() == rig.image
        if is_micropython():
            assert dl.pumped_locked >= len(rig.image) * 9 // 10
    finally:
        rig.close()


def test_offer_headers_and_inspect_hook_stop_the_download_before_a_write():
    # A cloud signals errors in-band (OneNET fuse's Ota-Errno on a 200): its offer's inspect()
    # sees every answer before a body byte is used, and its headers go with every request.
    rig = Rig(size=40000, chunk=4096, window=8192)
    seen = []

    def inspect(resp):
        seen.append(resp.status)
        if len(seen) == 3:
            raise errors.OTAError(errors.PROTOCOL, "cloud says no")

    rig.offer.headers = {"Authorization": "token"}
    rig.offer.inspect = inspect
    err = fails(errors.PROTOCOL, rig.run)
    assert err.message == "cloud says no"
    assert seen == [206, 206, 206]
    assert rig.client.last_headers == {"Authorization": "token"}
    # two windows arrived and were written; the third answer's body was never read
    assert rig.client.sent == 16384
    assert rig.boot_label() == "ota_0"
    rmtree(rig.tmp)


class DirectResponse(FakeResponse):
    """A response with fota.transport.http's fast path: direct() hands out a reader that, like a
    blocking
    socket, must never be asked for more than the body holds; taken() and failed() record."""

    def __init__(self, *args):
        super().__init__(*args)
        self.direct_calls = 0
        self.direct_read = 0
        self.taken_total = 0

    def direct(self):
        self.direct_calls += 1
        return self._direct_read

    def _direct_read(self, buf):
        if len(buf) > self._left:
            raise AssertionError("the fast path asked past the body")
        n = self.readinto(buf)
        self.direct_read += n
        return n

    def taken(self, n):
        self.taken_total += n

    def failed(self, exc):
        return errors.OTAError(errors.TIMEOUT, "timed out: the fake's %s" % (exc.args[0],))


class DirectClient(FakeClient):
    """FakeClient whose answers offer the fast path; short_length: their Content-Length says
    fewer bytes than the range asked for (the fast path must not be used then)."""

    def __init__(self, data, short_length=None):
        super().__init__(data)
        self.short_length = short_length
        self.answers = []

    def get_range(self, url, start, end, bare=False, headers=None, keep=None):
        r = super().get_range(url, start, end, bare, headers, keep)
        resp = DirectResponse(self, r.status, r.range_start, r.range_end, r.range_total, r.length)
        if self.short_length is not None and resp.length > self.short_length:
            resp.length = resp._left = self.short_length
        self.answers.append(resp)
        return resp


def test_fast_path_reads_whole_bodies_and_reports_every_byte():
    rig = Rig(size=100000, window=32768, lock_heap=True)
    client = DirectClient(rig.image)
    try:
        dl = rig.downloader(client=client)
        assert dl.run(rig.offer).version == "2.0.0"
        assert rig.slot_bytes() == rig.image
        # the last answer (1696 bytes) is shorter than a chunk: odd reads only
        assert [a.direct_calls for a in client.answers] == [1, 1, 1, 0]
        assert sum(a.direct_read for a in client.answers) > len(rig.image) * 8 // 10
        assert [a.taken_total for a in client.answers] == [a.direct_read for a in client.answers]
    finally:
        rig.close()


def test_fast_path_is_not_used_past_a_short_content_length():
    # Content-Range says 16 KiB, Content-Length 5000: the body ends early, the engine goes on
    # from there with a new request, as it does without the fast path.
    rig = Rig(size=40000, window=16384)
    client = DirectClient(rig.image, short_length=5000)
    try:
        rig.run(client=client)
        assert rig.slot_bytes() == rig.image
        assert [a.direct_calls for a in client.answers] == [0] * len(client.answers)
        assert len(client.answers) >= 8  # at most 5000 bytes an answer
        assert rig.erases() == [1] * len(rig.erases())
    finally:
        rig.close()


def test_fast_path_errors_are_named_by_the_transport():
    rig = Rig(size=70000, window=32768)
    client = DirectClient(rig.image)
    try:
        client.drop_after(20000, timeout=True)  # OSError(ETIMEDOUT) from the fast reader
        rig.run(client=client)
        assert rig.slot_bytes() == rig.image
        assert rig.erases() == [1] * len(rig.erases())
        retry = [info for kind, info in rig.events if kind == "retry"]
        assert len(retry) == 1 and retry[0]["error"] == "timed out: the fake's 110"
        assert client.answers[0].direct_calls == 1
    finally:
        rig.close()


class CountingPart:
    """esp32.Partition that counts the bytes read back (the engine's image check)."""

    def __init__(self, part):
        self.part = part
        self.read = 0

    def readblocks(self, block, buf, offset=0):
        self.read += len(buf)
        self.part.readblocks(block, buf, offset)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            self.part.writeblocks(block, buf)
        else:
            self.part.writeblocks(block, buf, offset)

    def ioctl(self, cmd, arg):
        return self.part.ioctl(cmd, arg)

    def info(self):
        return self.part.info()

    def set_boot(self):
        self.part.set_boot()


def test_a_bad_appended_hash_is_refused_by_set_boot_by_default():
    # The offer's MD5 matches, the image's own SHA-256 does not: ESP-IDF's set_boot() (the
    # shim, as esp_ota_set_boot_partition) refuses it, and the running firmware stays.
    rig = Rig(size=90000)
    try:
        image = bytearray(rig.image)
        image[-1] ^= 0x01
        rig.client.data = bytes(image)
        rig.offer.md5 = _hex(hashlib.md5(bytes(image)))
        exc = fails(errors.VERIFY, rig.run)
        assert exc.reason == errors.VERIFY and "rejects the image in ota_1" in exc.message
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_image_hash_is_checked_without_reading_the_slot_back():
    rig = Rig(size=200000, chunk=4096, image_sha=True)
    try:
        slot = Esp32Slot("esp32")
        slot.part = counting = CountingPart(slot.part)
        assert rig.run(slot=slot).version == "2.0.0"
        assert counting.read < 2 * 4096  # the header, segments, the tail and the stored hash
        # a bad appended hash is still caught, and the running firmware stays
        image = bytearray(rig.image)
        image[-1] ^= 0x01
        rig.client.data = bytes(image)
        rig.offer.md5 = _hex(hashlib.md5(bytes(image)))  # the offer's digest is fine
        exc = fails(errors.VERIFY, rig.run)
        assert exc.message.startswith("appended SHA-256 mismatch")
    finally:
        rig.close()


def test_power_cut_resume_checks_the_image_hash_over_every_byte():
    # After a reboot the streamed image hash starts over from the slot's re-hash, like the
    # offer's digests: a byte that went bad in flash before the cut is caught by the image's
    # own SHA-256 even when the offer's digest is of exactly those bytes.
    rig = Rig(size=90000, journal_blocks=4, image_sha=True)
    try:
        rig.offer._key = "task-1"  # the cloud's stable key: the same download after the reboot
        _cut_power(rig, 9)
        part = esp32.Partition("ota_1")
        block = bytearray(4096)
        part.readblocks(1, block)
        block[7] ^= 0x01
        part.writeblocks(1, block)
        bad = bytearray(rig.image)
        bad[4096 + 7] ^= 0x01
        rig.offer.md5 = _hex(hashlib.md5(bytes(bad)))
        exc = fails(errors.VERIFY, rig.run)
        assert exc.message.startswith("appended SHA-256 mismatch"), exc.message
        assert [info["offset"] for kind, info in rig.events if kind == "resume"] == [32768]
        assert rig.boot_label() == "ota_0"
    finally:
        rig.close()


def test_a_file_slot_is_closed_when_its_download_fails_and_resumes_later():
    from fota.slots import fileslot

    rig = Rig(size=30000)
    try:
        fileslot.set_hook(lambda path, size, version: True)
        slot = fileslot.FileSlot(rig.tmp + "/mcu.bin", 65536, "2.0.0")
        rig.offer.md5 = "0" * 32  # the bytes arrive, the digest is wrong
        fails(errors.VERIFY, lambda: rig.run(slot=slot))
        assert slot._f is None  # not left open until the collector finds it
        rig.offer.md5 = _hex(hashlib.md5(rig.image))
        assert rig.run(slot=slot).version == "2.0.0"  # the same slot object works again
        assert slot._f is None
    finally:
        fileslot.set_hook(None)
        rig.close()


class LateResponse(DirectResponse):
    """A fast-path response whose deadline passes after `reads` reads through direct(): late()
    says so from then on, and readinto() raises the transport's timeout, as the real one does."""

    def __init__(self, reads, *args):
        super().__init__(*args)
        self.reads = reads
        self.late_calls = 0

    def _direct_read(self, buf):
        n = DirectResponse._direct_read(self, buf)
        self.reads -= 1
        return n

    def late(self):
        self.late_calls += 1
        return self.reads <= 0

    def readinto(self, buf):
        if self.reads <= 0:
            raise errors.OTAError(errors.TIMEOUT, "timed out: body (over the deadline)")
        return DirectResponse.readinto(self, buf)


class LateClient(DirectClient):
    def get_range(self, url, start, end, bare=False, headers=None, keep=None):
        r = super().get_range(url, start, end, bare, headers, keep)
        self.answers.pop()
        reads = 5 if len(self.answers) == 0 else 1000  # only the first answer runs late
        resp = LateResponse(reads, self, r.status, r.range_start, r.range_end, r.range_total,
                            r.length)  # fmt: skip
        self.answers.append(resp)
        return resp


def test_the_pump_stops_at_the_deadline_between_chunks():
    # The first answer's deadline passes after its 5th fast read: the pump asks late() before
    # each read (with the heap locked), stops there, and the engine resumes from exactly the
    # bytes it holds: the first read (bytes that came with the head) plus five chunks.
    rig = Rig(size=70000, window=32768, lock_heap=True)
    client = LateClient(rig.image)
    try:
        rig.run(client=client)
        assert rig.slot_bytes() == rig.image
        retry = [info for kind, info in rig.events if kind == "retry"]
        assert len(retry) == 1 and "over the deadline" in retry[0]["error"]
        assert retry[0]["offset"] == 6 * 4096
        first = client.answers[0]
        # five reads, each after a late() that said no; then yes, twice: once ending that pump,
        # once at the start of the next, after which readinto() raises the timeout
        assert first.direct_read == 5 * 4096 and first.late_calls == 7
        assert rig.erases() == [1] * len(rig.erases())
    finally:
        rig.close()


class TaggedResponse(FakeResponse):
    def __init__(self, etag, *args):
        super().__init__(*args)
        self.etag = etag  # as fota.transport.http's Response has it


class SwappingClient(FakeClient):
    """A server whose file changes under the same URL: answers number `swaps` (counting from 0)
    come from `other` with ETag "b", the rest from the offer's image with ETag "a"."""

    def __init__(self, data, other, swaps, mode="range", tags=True):
        super().__init__(data, mode)
        self.tags = tags  # False: no ETag at all
        self.files = (data, other)
        self.swaps = swaps

    def get_range(self, url, start, end, bare=False, headers=None, keep=None):
        which = 1 if len(self.requests) in self.swaps else 0
        self.data = self.files[which]
        self.total = len(self.data)
        r = super().get_range(url, start, end, bare, headers, keep)
        tag = "ab"[which] if self.tags else None
        return TaggedResponse(tag, self, r.status, r.range_start, r.range_end, r.range_total,
                              r.length)  # fmt: skip


def test_a_file_that_changed_on_the_server_is_fetched_again_from_byte_zero():
    # The 3rd answer (bytes 16384..) comes from another build of the same size: its ETag says
    # so before a byte of it is used, so the engine starts over (the slot's first blocks came
    # from the offer's file but the digests must cover one file), and completes once the
    # server serves the offer's file again.
    other = espidf.make_app_image("2.0.1", size=40000)
    rig = Rig(size=40000, window=8192)
    client = SwappingClient(rig.image, other, swaps=(2,))
    try:
        rig.run(client=client)
        assert rig.slot_bytes() == rig.image
        retry = [info for kind, info in rig.events if kind == "retry"]
        assert len(retry) == 1 and retry[0]["offset"] == 0
        assert retry[0]["error"] == "the file changed on the server: starting over"
        assert [r[0] for r in client.requests] == [0, 8192, 16384, 0, 8192, 16384, 24576, 32768]
    finally:
        rig.close()
    # a server that ignores Range: the whole file each time; the first answer dies at 10000
    # bytes, the second is the other build
    rig = Rig(size=40000, window=8192)
    client = SwappingClient(rig.image, other, swaps=(1,), mode="ignore")
    client.drop_after(10000)
    try:
        rig.run(client=client)
        assert rig.slot_bytes() == rig.image
        retry = [info for kind, info in rig.events if kind == "retry"]
        assert [info["offset"] for info in retry] == [10000, 0]
        assert len(client.requests) == 3
    finally:
        rig.close()


def test_a_file_that_keeps_changing_uses_up_the_retries():
    rig = Rig(size=40000, window=8192, retries=2)
    other = espidf.make_app_image("2.0.1", size=40000)
    client = SwappingClient(rig.image, other, swaps=range(1, 100, 2))  # every other answer
    try:
        exc = fails(errors.DOWNLOAD, rig.run, client=client)
        assert exc.message == "the file changed on the server: starting over"
        assert len(client.requests) == 6  # 3 attempts, each one good answer and one changed
        assert rig.boot_label() == "ota_0"
        assert not rig.journal_exists()
    finally:
        rig.close()


def test_another_size_once_bytes_are_in_is_another_file():
    # Without ETags: a total that differs from the offer at byte 0 is a wrong offer (verify);
    # later, the file changed: start over.
    rig = Rig(size=40000, window=8192)
    other = espidf.make_app_image("2.0.1", size=50000)
    client = SwappingClient(rig.image, other, swaps=(1,), tags=False)
    try:
        rig.run(client=client)
        assert rig.slot_bytes() == rig.image
        retry = [info for kind, info in rig.events if kind == "retry"]
        assert [info["offset"] for info in retry] == [0]
    finally:
        rig.close()
    rig = Rig(size=40000, window=8192)
    client = SwappingClient(rig.image, other, swaps=(0,), tags=False)
    try:
        exc = fails(errors.VERIFY, rig.run, client=client)
        assert "server has 50000 bytes, the offer says 40000" in exc.message
    finally:
        rig.close()


def test_a_download_in_turns_makes_one_request_per_turn_and_fetches_nothing_twice():
    # fetch(offer, turn=1): one window per call, then None (paused); fetch(None, 1) goes on
    # where it stopped, from the bytes in RAM; the last call verifies and returns the engine
    rig = Rig(size=100000, window=16384)
    try:
        dl = rig.downloader()
        turns = 0
        offer = rig.offer
        while dl.fetch(offer, 1) is None:
            offer = None
            turns += 1
            assert len(rig.client.requests) == turns  # one request per paused turn
            assert dl.delay_ms == 0
        assert turns == 6  # 7 windows of 16 KB: six pauses, the seventh call ends it
        starts = [r[0] for r in rig.client.requests]
        assert starts == list(range(0, 100000, 16384))  # no byte asked for twice
        assert rig.slot_bytes() == rig.image
        assert rig.erases() == [1] * 25
    finally:
        rig.close()


def test_a_paused_download_leaves_a_retrys_backoff_to_the_caller():
    # in turns the engine never sleeps: a dropped connection ends the turn with wait_ms set,
    # and the journal saved, so a reboot in the pause resumes too
    rig = Rig(size=100000, window=16384, journal_blocks=1)
    try:
        rig.client.drop_after(40000)
        dl = rig.downloader()
        waits = []
        offer = rig.offer
        while dl.fetch(offer, 1) is None:
            offer = None
            waits.append(dl.delay_ms)
        assert rig.clock.slept_ms == 0
        assert waits.count(1000) == 1 and waits.count(0) == len(waits) - 1
        assert [k for k, _ in rig.events].count("retry") == 1
        assert rig.slot_bytes() == rig.image
    finally:
        rig.close()


def test_a_pause_saves_the_journal_so_a_reboot_in_it_resumes_there():
    rig = Rig(size=100000, window=16384, journal_blocks=32)  # no commit of its own before 128 KB
    try:
        assert rig.downloader().fetch(rig.offer, 1) is None  # then the board resets
        again = rig.downloader()
        assert again.fetch(rig.offer) is again and again.resumed_from == 16384
        assert [r[0] for r in rig.client.requests] == list(range(0, 100000, 16384))
        assert rig.slot_bytes() == rig.image
    finally:
        rig.close()
