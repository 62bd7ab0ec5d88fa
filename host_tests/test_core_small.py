# Version comparison, the offer's key, and the journal's crash-safe writes.

from dual import fails, rmtree, tmpdir

from fota.core.journal import Journal
from fota.core.offer import Offer
from fota.core.version import compare

RUN_ON_MICROPYTHON = True


def test_versions_compare_as_firmware_versions():
    assert compare("1.2.10", "1.2.9") == 1
    assert compare("1.2.9", "1.2.10") == -1
    assert compare("v1.2.0", "1.2.0") == 0
    assert compare("1.0", "1.0.1") == -1
    assert compare("1.0.0", "1.0.0-rc1") == 1
    assert compare("1.0.0-rc2", "1.0.0-rc1") == 1
    assert compare("2.0", "10.0") == -1


def test_offer_key_is_stable_and_can_be_given():
    a = Offer("http://h/fw.bin", 10, md5="a" * 32, version="2")
    b = Offer("http://h/fw.bin", 10, md5="a" * 32, version="2")
    assert a.key() == b.key()
    assert Offer("http://h/fw.bin", 11, md5="a" * 32).key() != a.key()
    tokened = Offer("http://h/fw.bin?token=1", 10, md5="a" * 32, key="task-7")
    assert tokened.key() == "task-7"


def test_journal_round_trip_and_mismatch():
    tmp = tmpdir()
    try:
        j = Journal(tmp + "/j.json")
        assert j.load("k", 100) == 0  # nothing yet
        j.save("secret-url?token=abc", 100000, 65536)
        assert j.load("secret-url?token=abc", 100000) == 65536
        assert j.load("secret-url?token=abc", 100001) == 0  # another size: another offer
        assert j.load("other", 100000) == 0
        with open(tmp + "/j.json") as f:
            text = f.read()
        assert "token" not in text and "secret" not in text  # only a fingerprint is kept
        j.save("secret-url?token=abc", 100000, 98304)  # replaces the old one
        assert j.load("secret-url?token=abc", 100000) == 98304
        j.clear()
        assert j.load("secret-url?token=abc", 100000) == 0
    finally:
        rmtree(tmp)


def test_corrupt_journal_means_start_over():
    tmp = tmpdir()
    try:
        for junk in ("", "{", "[1, 2]", '{"id": 3, "size": "x", "offset": -5}'):
            with open(tmp + "/j.json", "w") as f:
                f.write(junk)
            assert Journal(tmp + "/j.json").load("k", 10) == 0
    finally:
        rmtree(tmp)


def _size(path):
    import os

    return os.stat(path)[6]


def test_journal_commits_are_appended_and_a_torn_one_is_skipped():
    tmp = tmpdir()
    path = tmp + "/j.json"
    try:
        j = Journal(path)
        j.clear()
        j.save("k", 10**6, 4096)  # the head
        head = _size(path)
        for offset in (8192, 12288, 16384):
            j.save("k", 10**6, offset)  # one 22-byte record each
        assert _size(path) == head + 3 * 22
        assert Journal(path).load("k", 10**6) == 16384
        with open(path, "ab") as f:
            f.write(b"00000204")  # a power cut in the middle of the next append
        j = Journal(path)
        assert j.load("k", 10**6) == 16384
        j.save("k", 10**6, 20480)  # after a torn record the head is written anew
        assert _size(path) < head + 22 and Journal(path).load("k", 10**6) == 20480
        with open(path, "ab") as f:
            f.write(b"0000024576 0000000000\n")  # whole but garbled: its check fails
        assert Journal(path).load("k", 10**6) == 20480
        assert Journal(path).load("k", 10**6 + 1) == 0  # records never stand for another offer
    finally:
        rmtree(tmp)


def test_journal_stays_small_and_reads_the_old_single_record_form():
    tmp = tmpdir()
    path = tmp + "/j.json"
    try:
        j = Journal(path)
        j.save("k", 10**7, 0)
        for i in range(1, 200):
            j.save("k", 10**7, i * 4096)
        assert _size(path) < 64 * 22 + 200  # the head is rewritten every 64 records
        assert Journal(path).load("k", 10**7) == 199 * 4096
        from fota.core.journal import _fingerprint

        with open(path, "w") as f:  # what earlier versions wrote: one JSON object
            f.write('{"id": "%s", "size": 100, "offset": 40}' % _fingerprint("k"))
        assert Journal(path).load("k", 100) == 40
    finally:
        rmtree(tmp)


def test_a_state_file_that_cannot_be_written_is_a_flash_error():
    from fota.core.errors import FLASH
    from fota.core.store import Store

    tmp = tmpdir()
    try:
        store = Store(tmp + "/missing-folder/fota.state")  # the file system refuses the write
        assert store.load() == {}
        exc = fails(FLASH, store.update, pending={"job": 1})
        assert "cannot write the state file" in exc.message
    finally:
        rmtree(tmp)
