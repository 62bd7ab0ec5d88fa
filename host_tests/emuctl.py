# Drive a cloud emulator's control API (/_emu/, tools/emulator.py) from tests on CPython and
# on the MicroPython unix port alike, through the agent's own HTTP client.
#
#   import emuctl
#   base = os.getenv("FOTA_TEST_ONENET")
#   emuctl.reset(base, image=path, version="2.0.0", type=1)   # -> the new state
#   emuctl.fault(base, kind="drop", after=5000)               # next download: cut after 5000
#   emuctl.clock(base, 3 * 24 * 3600)                         # now + 3 days
#   emuctl.log(base)                                          # [every device request]
#   emuctl.state(base)                                        # the task / batch
#
# An https base (FOTA_TEST_ONENET_TLS) is verified against the test CA in FOTA_TEST_FILES.
# A refused control request raises EmuCtlError with the emulator's message.

import os

from fota.transport.http import Client

_LIMIT = 4 * 1024 * 1024  # logs of a whole OTA with their headers exceed the default 4096


class EmuCtlError(Exception):
    pass


def _client(base):
    if base.startswith("https:"):
        with open(os.getenv("FOTA_TEST_FILES") + "/ca.der", "rb") as f:
            return Client(ca=f.read(), allow_http=True)
    return Client(allow_http=True)


def _call(base, method, name, body=None):
    client = _client(base)
    try:
        resp = client.request(method, base.rstrip("/") + "/_emu/" + name, json=body)
        answer = resp.json(_LIMIT)
        if resp.status != 200:
            raise EmuCtlError("/_emu/%s: HTTP %d: %s" % (name, resp.status, answer))
        return answer
    finally:
        client.close()


def reset(base, **options):
    """Clear log, faults, clock and task; options: image (abs path or None), version, ..."""
    return _call(base, "POST", "reset", options)


def fault(base, **spec):
    """Queue a fault: kind, on, after, status, times, code (see tools/emulator.py)."""
    return _call(base, "POST", "fault", spec)


def clock(base, offset_s):
    return _call(base, "POST", "clock", {"offset_s": offset_s})


def task(base, state):
    """Set the task's (batch's) state, e.g. "cancelled" in the middle of a download."""
    return _call(base, "POST", "task", {"state": state})


def log(base, since=0):
    return _call(base, "GET", "log?since=%d" % since)


def state(base):
    return _call(base, "GET", "state")


def info(base):
    """The cloud name, fault endpoints and the credentials the emulator accepts."""
    client = _client(base)
    try:
        return client.request("GET", base.rstrip("/") + "/_emu").json(_LIMIT)
    finally:
        client.close()
