# Helpers for tests that run on CPython and on the MicroPython unix port alike (no pytest there).

import os

_counter = [0]


def raises(exc_type, fn, *args, **kwargs):
    """Call fn; return the exc_type exception it raised, or fail the test."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def tmpdir():
    """A new empty directory under $TMPDIR (or /tmp); the caller may remove it with rmtree()."""
    base = os.getenv("TMPDIR") or "/tmp"
    while True:
        _counter[0] += 1
        path = "%s/fota-%s-%d" % (base, os.urandom(4).hex(), _counter[0])
        try:
            os.mkdir(path)
            return path
        except OSError:
            continue


def rmtree(path):
    for entry in os.listdir(path):
        full = path + "/" + entry
        try:
            os.remove(full)
        except OSError:
            rmtree(full)
    os.rmdir(path)


def is_micropython():
    import sys

    return sys.implementation.name == "micropython"


def repo_path(rel):
    """Absolute path of a file in the repository (dual.py lives in host_tests/)."""
    here = __file__.rpartition("/")[0] or "."
    return here + "/../" + rel


def board_profile(name):
    import json

    with open(repo_path("boards/%s/board.json" % name)) as f:
        return json.load(f)


def new_board(name="esp32", version=None, tmp=None):
    """A flash file for board `name` in a new temp dir, attached to the esp32 shim.

    With `version`, ota_0 holds a valid app image of that version and otadata selects it (as after
    a first flash with esptool and one confirmed boot). Returns (dir, flash path).
    """
    import esp32
    import espidf

    tmp = tmp or tmpdir()
    path = tmp + "/flash.bin"
    profile = board_profile(name)
    espidf.make_board_flash(path, profile, version)
    esp32.attach(path, profile["chip"])
    return tmp, path


def fails(reason, fn, *args, **kwargs):
    """Call fn; return the OTAError it raised, after checking that its reason is `reason`."""
    from fota.core.errors import OTAError

    exc = raises(OTAError, fn, *args, **kwargs)
    if exc.reason != reason:
        raise AssertionError("%r: reason %s, expected %s" % (exc.message, exc.reason, reason))
    return exc
