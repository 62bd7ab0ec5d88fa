# The board adapter for ESP32-family chips: what the app needs from the hardware, in one place
# (running version, slots, confirm/rollback, reset, Wi-Fi). The profile comes from /board.json
# (written by `make deploy`, `make fsimage` or the virtual board); defaults fit a plain ESP32.

from fota.core import errors

_DEFAULTS = {"name": "esp32", "chip": "esp32", "chunk": 4096}


def profile(path="/board.json"):
    import json

    data = dict(_DEFAULTS)
    try:
        with open(path) as f:
            data.update(json.load(f))
    except OSError:
        pass  # no profile on this board: a plain ESP32
    except ValueError:
        raise errors.OTAError(errors.CONFIG, "board.json is not valid JSON") from None
    return data


class Board:
    def __init__(self, prof):
        self.profile = prof
        self.chip = prof.get("chip", "esp32")

    def slot(self):
        from fota.slots.esp32slot import Esp32Slot

        return Esp32Slot(self.chip)

    def running_label(self):
        import esp32

        return esp32.Partition(esp32.Partition.RUNNING).info()[4]

    def running_version(self):
        """The version in the running image's app descriptor."""
        import esp32

        from fota.slots.esp32image import app_version

        return app_version(esp32.Partition(esp32.Partition.RUNNING), bytearray(4096))

    def confirm(self):
        """Cancel the bootloader's rollback: the running image is good."""
        import esp32

        try:
            esp32.Partition.mark_app_valid_cancel_rollback()
        except OSError as exc:
            raise errors.OTAError(errors.FLASH, "cannot confirm the running image: %s" % (exc,))

    def rollback(self):
        """Boot the other slot at the next reset (its image is validated by set_boot)."""
        import esp32

        try:
            esp32.Partition(esp32.Partition.RUNNING).get_next_update().set_boot()
        except OSError as exc:
            raise errors.OTAError(errors.FLASH, "cannot switch to the other slot: %s" % (exc,))

    def reset(self):
        import machine

        machine.reset()

    def network_up(self, wifi=None, clock=None):
        """Connect the station interface when the config has a wifi section; -> True when up.

        Without one the application manages the network itself (e.g. in boot.py): the health
        check then rests on reaching the cloud."""
        if not wifi:
            return True
        import network

        sta = network.WLAN(network.STA_IF)
        if sta.isconnected():
            return True
        sta.active(True)
        sta.connect(wifi["ssid"], wifi.get("password", ""))
        if clock is None:
            import time as clock
        deadline = clock.ticks_add(clock.ticks_ms(), wifi.get("timeout_s", 20) * 1000)
        while not sta.isconnected():
            if clock.ticks_diff(deadline, clock.ticks_ms()) <= 0:
                return False
            clock.sleep_ms(100)
        return True
