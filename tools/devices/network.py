# Shim of MicroPython's `network` module for the host: a WLAN interface over the host's network.
#
# Connecting "succeeds" when the network is up; set_link(False) (or FOTA_WIFI=down in the
# environment) makes the access point unreachable, so code paths for a missing network run on the
# host exactly as on a board whose Wi-Fi is gone.

import os

STA_IF = 0
AP_IF = 1

STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202

# [the access point reachable, {interface id: WLAN}]; a WLAN's state is one list, [id, active,
# status, ssid]; optional arguments come as *args: every name here is an interned string on the
# virtual board's heap, where a board has this module in C
_net = [os.getenv("FOTA_WIFI") != "down", {}]


def set_link(up):
    """Host control, not device API: make the access point reachable or not."""
    _net[0] = bool(up)


class WLAN:
    def __new__(cls, *args):  # (interface id=STA_IF)
        # The device returns the same interface object for the same id.
        interface_id = args[0] if args else STA_IF
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        obj = _net[1].get(interface_id)
        if obj is None:
            obj = object.__new__(cls)
            obj._s = [interface_id, False, STAT_IDLE, None]
            _net[1][interface_id] = obj
        return obj

    def __init__(self, *args):
        pass

    def active(self, *args):  # (is_active)
        s = self._s
        if not args:
            return s[1]
        s[1] = bool(args[0])
        if not s[1]:
            s[2] = STAT_IDLE
        return None

    def connect(self, *args):  # (ssid, key, bssid)
        s = self._s
        if not s[1]:
            raise OSError("Wifi Not Started")
        s[3] = args[0] if args else None
        s[2] = STAT_GOT_IP if _net[0] else STAT_NO_AP_FOUND

    def disconnect(self):
        self._s[2] = STAT_IDLE

    def isconnected(self):
        s = self._s
        return s[1] and s[2] == STAT_GOT_IP and _net[0]

    def status(self, *args):  # (param)
        if args and args[0] == "rssi":
            return -50
        status = self._s[2]
        if status == STAT_GOT_IP and not _net[0]:
            return STAT_IDLE
        return status

    def ifconfig(self):
        if not self.isconnected():
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def config(self, *args):  # (param)
        param = args[0] if args else None
        if param == "mac":
            return b"\xa0\xb1\xc2\xd3\xe4\xf5"
        if param == "ssid":
            return self._s[3] or ""
        raise ValueError("unknown config param")
