# The download engine through tools/faultproxy.py in front of nginx: for every fault the proxy
# can inject, the engine either completes with the right bytes once the faults stop, or fails
# with one clear error; either way nothing is written outside the image's blocks of the other
# slot, and the boot slot never changes (fetch() downloads and checks digests, never
# activates). Runs on CPython and on both MicroPython builds; the tests arm the shared proxy
# over its control API (POST /_proxy), since the MicroPython processes reach it by HTTP only.

import binascii
import hashlib
import json
import os

import esp32
from dual import fails, new_board, rmtree
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
_PROXY = os.getenv("FOTA_TEST_PROXY")
_NAME = "medium.bin"
_SIZE = 300000
_BLOCK = 4096


def _control(method, path, body=None):
    client = Client(allow_http=True)
    try:
        resp = client.request(method, _PROXY + path, json=body)
        answer = resp.json(1 << 20)
        assert resp.status == 200, answer
        return answer
    finally:
        client.close()


def _arm(mode, times=None, skip=0, seed=None):
    # only the image's requests count: nothing else goes through the proxy meanwhile, but the
    # filter keeps a stray request from taking a test's fault
    spec = {"mode": mode, "times": times, "skip": skip, "only": "/", "seed": seed}
    return _control("POST", "/_proxy", spec)


def _log():
    return _control("GET", "/_proxy/log")


def _md5_of(name):
    with open(_FILES + "/manifest.json") as f:
        return json.load(f)[name]["md5"]


class Rig:
    def __init__(self, **options):
        self.tmp, _ = new_board(version="1.0.0")
        options.setdefault("window", 65536)
        self.client = Client(allow_http=True, read_timeout=2.0, deadline=0.5)
        self.clock = FakeClock()
        self.events = []
        self.running = self._read("ota_0", 0, 8192)
        self.dl = Downloader(
            self.client,
            Esp32Slot("esp32"),
            Journal(self.tmp + "/fota.journal"),
            self.clock,
            on_event=lambda kind, info: self.events.append((kind, info)),
            **options,
        )

    def fetch(self, name=_NAME):
        offer = Offer(_PROXY + "/" + name, _SIZE, md5=_md5_of(_NAME), version="2.0.0")
        return self.dl.fetch(offer)

    def _read(self, label, block, n):
        buf = bytearray(n)
        esp32.Partition(label).readblocks(block, buf)
        return bytes(buf)

    def slot_ok(self):
        h = hashlib.md5()
        buf = bytearray(_BLOCK)
        part = esp32.Partition("ota_1")
        left = _SIZE
        block = 0
        while left > 0:
            part.readblocks(block, buf)
            h.update(buf[: min(left, _BLOCK)])
            left -= _BLOCK
            block += 1
        return binascii.hexlify(h.digest()).decode() == _md5_of(_NAME)

    def untouched(self):
        """The running slot as it was, the boot slot unchanged, and nothing written in the
        other slot past the image's last block (erased flash reads 0xFF)."""
        after = self._read("ota_1", (_SIZE + _BLOCK - 1) // _BLOCK, _BLOCK)
        boot = esp32.Partition(esp32.Partition.BOOT).info()[4]
        return (
            self._read("ota_0", 0, 8192) == self.running
            and boot == "ota_0"
            and after == b"\xff" * _BLOCK
        )

    def retries(self):
        return [info for kind, info in self.events if kind == "retry"]

    def close(self):
        self.client.close()
        esp32.detach()
        rmtree(self.tmp)


def _completes(mode, times, retried, **options):
    # the engine gets through `times` faults and ends with the right bytes
    skip = options.pop("skip", 0)
    seed = options.pop("seed", None)
    _arm(mode, times, skip, seed)
    rig = Rig(**options)
    try:
        rig.fetch()
        assert rig.slot_ok() and rig.untouched()
        assert len(rig.retries()) == retried, rig.retries()
        faulted = [r for r in _log() if r["fault"]]
        assert len(faulted) == (times or len(faulted)), faulted
        return rig
    finally:
        rig.close()


def _fails(mode, times, reason, **options):
    _arm(mode, times)
    rig = Rig(**options)
    try:
        exc = fails(reason, rig.fetch)
        assert rig.untouched()
        return exc, rig
    finally:
        rig.close()


def test_a_plain_proxy_changes_nothing():
    rig = _completes("pass", None, 0)
    assert rig.dl.requests == 5  # 300000 bytes in 64 KiB windows
    log = _log()
    assert [r["range"] for r in log[:2]] == ["bytes=0-65535", "bytes=65536-131071"]
    assert all(r["status"] == 206 and not r["fault"] for r in log)


def test_connection_reset_at_a_chosen_byte_resumes():
    # a reset loses what the client had not read yet: MicroPython's readinto of a whole chunk
    # loses the chunk's bytes, so the resume points are at or below the 5000th byte of each
    rig = _completes("reset-at=5000", 2, 2)
    first, second = [info["offset"] for info in rig.retries()]
    assert 0 < first <= 5000 and first < second <= first + 5000, (first, second)


def test_connection_reset_at_random_bytes_resumes():
    _completes("reset-at=random", 3, 3, seed=7)


def test_truncated_answers_resume():
    rig = _completes("truncate-at=30000", 2, 2, window=131072)
    assert [info["offset"] for info in rig.retries()] == [30000, 60000]
    assert "connection closed" in rig.retries()[0]["error"]


def test_a_stall_ends_at_the_deadline_and_resumes():
    rig = _completes("stall-at=20000", 1, 1)
    assert "deadline" in rig.retries()[0]["error"]
    assert 16384 <= rig.retries()[0]["offset"] <= 20000


def test_a_slow_drip_ends_at_the_deadline_and_resumes():
    rig = _completes("drip=20", 1, 1)
    retry = rig.retries()[0]
    assert "deadline" in retry["error"] and retry["offset"] < 100  # a few bytes got through


def test_a_flipped_byte_fails_the_digest_and_activates_nothing():
    exc, rig = _fails("flip-at=1000", 1, errors.VERIFY)
    assert "md5" in exc.message.lower()
    assert rig.retries() == []


def test_a_200_for_a_range_request_is_skipped_to_the_offset():
    rig = _completes("ignore-range", None, 0)
    assert rig.dl.requests == 1  # the whole file came with the first answer


def test_answers_without_content_length_end_at_close():
    _completes("no-length", None, 0)


def test_chunked_answers():
    _completes("chunked", None, 0)


def test_a_burst_of_server_errors_is_retried():
    rig = _completes("status=503", 3, 3)
    assert all(info["error"] == "HTTP 503 for the image" for info in rig.retries())


def test_endless_server_errors_use_up_the_retries():
    exc, rig = _fails("status=503", None, errors.DOWNLOAD, retries=2)
    assert exc.message == "HTTP 503 for the image" and len(rig.retries()) == 2


def test_a_missing_file_is_one_error_not_retried():
    exc, rig = _fails("status=404", None, errors.DOWNLOAD)
    assert exc.message == "HTTP 404 for the image" and rig.retries() == []


def test_another_file_under_the_same_url_means_starting_over():
    # the 3rd answer comes from another file of the same size: its ETag differs
    rig = _completes("swap=/other-medium.bin", 1, 1, skip=2)
    retry = rig.retries()[0]
    assert retry["offset"] == 0 and "changed on the server" in retry["error"]
    ranges = [r["range"] for r in _log()]
    assert ranges[:4] == ["bytes=0-65535", "bytes=65536-131071", "bytes=131072-196607"] + [
        "bytes=0-65535"
    ]


def test_another_size_under_the_same_url_means_starting_over():
    # the 2nd answer is a 416 for the shorter file: its Content-Range names the other total
    rig = _completes("swap=/small.bin", 1, 1, skip=1)
    assert _log()[1]["status"] == 416
    assert rig.retries()[0]["offset"] == 0


def test_another_size_from_the_start_is_a_wrong_offer():
    exc, _ = _fails("swap=/small.bin", None, errors.VERIFY)
    assert exc.message == "server has 10000 bytes, the offer says 300000"


def test_a_few_redirects_are_followed():
    _completes("redirect-loop", 3, 0)  # three hops: the client's limit


def test_a_redirect_loop_is_one_clear_error():
    exc, _ = _fails("redirect-loop", None, errors.DOWNLOAD, retries=1)
    assert exc.message == "too many redirects (more than 3)"


def test_after_a_corrupt_transfer_the_next_try_starts_over_and_completes():
    # The resume journal must not carry a corrupt byte into the next attempt: the same offer,
    # tried again (the next poll, a new engine) once the faults stopped, fetches from byte 0.
    _arm("flip-at=60000", 1)
    rig = Rig(journal_blocks=4)
    try:
        fails(errors.VERIFY, rig.fetch)
        _arm("pass")
        rig.dl = Downloader(rig.client, Esp32Slot("esp32"), Journal(rig.tmp + "/fota.journal"),
                            rig.clock, window=65536, journal_blocks=4)  # fmt: skip
        rig.fetch()
        assert rig.dl.resumed_from == 0 and rig.slot_ok() and rig.untouched()
    finally:
        rig.close()
