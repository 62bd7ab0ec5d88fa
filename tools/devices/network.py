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

_link = [os.getenv("FOTA_WIFI") != "down"]


def set_link(up):
    """Host control, not device API: make the access point reachable or not."""
    _link[0] = bool(up)


def hostname(name=None):
    return "fota-host" if name is None else None


class WLAN:
    _instances = {}

    def __new__(cls, interface_id=STA_IF):
        # The device returns the same interface object for the same id.
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        obj = WLAN._instances.get(interface_id)
        if obj is None:
            obj = object.__new__(cls)
            obj._if = interface_id
            obj._active = False
            obj._status = STAT_IDLE
            obj._ssid = None
            WLAN._instances[interface_id] = obj
        return obj

    def __init__(self, interface_id=STA_IF):
        pass

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        self._active = bool(is_active)
        if not self._active:
            self._status = STAT_IDLE
        return None

    def connect(self, ssid=None, key=None, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._ssid = ssid
        self._status = STAT_GOT_IP if _link[0] else STAT_NO_AP_FOUND

    def disconnect(self):
        self._status = STAT_IDLE

    def isconnected(self):
        return self._active and self._status == STAT_GOT_IP and _link[0]

    def status(self, param=None):
        if param == "rssi":
            return -50
        if self._status == STAT_GOT_IP and not _link[0]:
            return STAT_IDLE
        return self._status

    def ifconfig(self):
        if not self.isconnected():
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def config(self, param):
        if param == "mac":
            return b"\xa0\xb1\xc2\xd3\xe4\xf5"
        if param == "ssid":
            return self._ssid or ""
        raise ValueError("unknown config param")
