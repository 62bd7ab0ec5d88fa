# Version comparison, the offer's key, and the journal's crash-safe writes.

from dual import rmtree, tmpdir
from fota.journal import Journal
from fota.offer import Offer
from fota.version import compare

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
