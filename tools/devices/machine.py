# Shim of MicroPython's `machine` module for the host: the parts an OTA agent touches.
#
# reset() ends the process the way a reset ends the firmware: it raises SystemExit with
# RESET_EXIT_STATUS, which the virtual board takes as "reboot me". Nothing else here pretends to
# be hardware it is not: unknown attributes raise AttributeError as on a board without them.

import os

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

RESET_EXIT_STATUS = 0x5E  # the process exit status that means machine.reset()
DEEPSLEEP_EXIT_STATUS = 0x5D  # ... and machine.deepsleep(): the board wakes with DEEPSLEEP_RESET

_freq = 160000000


def reset():
    raise SystemExit(RESET_EXIT_STATUS)


def soft_reset():
    raise SystemExit(RESET_EXIT_STATUS)


def deepsleep(*args):  # (time_ms)
    """Deep sleep ends the program; the virtual board boots again at once (time is not waited)."""
    raise SystemExit(DEEPSLEEP_EXIT_STATUS)


def reset_cause():
    """PWRON_RESET unless the virtual board says otherwise (FOTA_RESET_CAUSE)."""
    cause = os.getenv("FOTA_RESET_CAUSE")
    return int(cause) if cause else PWRON_RESET


def unique_id():
    """Six bytes, like the ESP32's base MAC; FOTA_UNIQUE_ID (12 hex digits) overrides."""
    uid = os.getenv("FOTA_UNIQUE_ID") or "a0b1c2d3e4f5"
    return bytes(int(uid[i : i + 2], 16) for i in range(0, 12, 2))


def freq(*args):  # (hz): optional arguments as *args, no name on the board's heap
    global _freq
    if not args:
        return _freq
    hz = args[0]
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq = hz
    return None


def idle():
    return None


class WDT:
    """Watchdog: counts feeds. The host never bites; tests read `feeds` and `timeout`."""

    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("WDT timeout too short")
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1
