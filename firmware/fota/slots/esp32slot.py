# The ESP32 board adapter and its A/B app slot: the only module of the agent that touches the
# hardware (esp32, machine, network), always lazily, never at import.
#
# Board: the running version, the slot to write, confirm/rollback, reset, Wi-Fi. Esp32Slot: the
# inactive OTA partition, written through esp32.Partition. Each 4096-byte block is erased once,
# just ahead of its write (writeblocks without offset erases exactly the range it writes);
# nothing is erased before begin() has checked the size against the slot. An OSError from
# ESP-IDF is an OTAError with reason flash; ESP_ERR_OTA_VALIDATE_FAILED from set_boot, verify.

from micropython import const

from fota.core import errors

BLOCK = const(4096)
_ESP_ERR_OTA_VALIDATE_FAILED = const(-0x1503)  # errno of the OSError set_boot raises

# esp_image_header_t.chip_id of each chip, as ESP-IDF's esp_chip_id_t
_CHIPS = const(("esp32", 0, "esp32s2", 2, "esp32c3", 5, "esp32s3", 9, "esp32c2", 12, "esp32c6", 13))


def chip_id(chip):
    """ESP-IDF's chip id for a chip name; OTAError (config) for a chip it does not know."""
    for i in range(0, len(_CHIPS), 2):
        if _CHIPS[i] == chip:
            return _CHIPS[i + 1]
    raise errors.OTAError(errors.CONFIG, "unknown chip %r" % (chip,))


def _flash(what, exc):
    return errors.OTAError(errors.FLASH, "%s: %s" % (what, exc))


class Board:
    """cfg: anything with get("chip") (the board profile, or the agent's checked config)."""

    def __init__(self, cfg):
        self.chip = cfg.get("chip", "esp32")

    def slot(self):
        return Esp32Slot(self.chip)

    def running_label(self):
        import esp32

        return esp32.Partition(esp32.Partition.RUNNING).info()[4]

    def next_boot(self):
        import esp32

        return esp32.Partition(esp32.Partition.BOOT).info()[4]

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
            raise _flash("cannot confirm the running image", exc) from None

    def rollback(self):
        """Boot the other slot at the next reset (its image is validated by set_boot). -> the
        version in its app descriptor."""
        import esp32

        from fota.slots.esp32image import app_version

        other = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        version = app_version(other, bytearray(4096))
        try:
            other.set_boot()
        except OSError as exc:
            raise _flash("cannot switch to the other slot", exc) from None
        return version

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


class Esp32Slot:
    def __init__(self, chip="esp32", partition=None):
        """partition: an esp32.Partition to write (default: the next OTA update slot)."""
        self.chip_id = chip_id(chip)
        import esp32  # lazily: nothing touches hardware at import time

        try:
            running = esp32.Partition(esp32.Partition.RUNNING)
            self.part = partition or running.get_next_update()
        except OSError as exc:
            raise _flash("no OTA update partition", exc) from None
        if self.part.info()[2] == running.info()[2]:
            raise errors.OTAError(errors.FLASH, "refusing to write the running partition")
        self.capacity = (self.part.ioctl(4, 0) or 0) * BLOCK
        self.label = self.part.info()[4]

    def begin(self, size):
        """Check that an image of `size` bytes fits; nothing is erased here."""
        if size > self.capacity:
            raise errors.OTAError(
                errors.NO_SPACE,
                "image of %d bytes does not fit %s (%d bytes)" % (size, self.label, self.capacity),
            )

    def write(self, block, buf):
        """Erase and write whole blocks from `block` on; len(buf) is a multiple of 4096.

        Allocates nothing on success (the download's chunk loop calls it).
        """
        try:
            self.part.writeblocks(block, buf)
        except OSError as exc:
            raise self.failed(block, exc) from None

    def writer(self):
        """The partition's own writeblocks(block, buf), for the download's steady state: what
        write() does without a Python call around it. Pass its OSError to failed()."""
        return self.part.writeblocks

    def failed(self, block, exc):
        """The FlashError for an OSError `exc` from writing `block`."""
        return errors.OTAError(
            errors.FLASH, "writing block %d of %s failed: %s" % (block, self.label, exc)
        )

    def read(self, block, buf):
        try:
            self.part.readblocks(block, buf)
        except OSError as exc:
            raise errors.OTAError(
                errors.FLASH, "reading block %d of %s failed: %s" % (block, self.label, exc)
            )

    def sha_prefix(self, size):
        """How many leading bytes of an image of `size` bytes validate() can take as a streamed
        SHA-256 (fota.core.digest's prefix=): the appended hash covers all but its own 32 bytes."""
        return size - 32

    def validate(self, size, scratch, sha=True, prefix=None):
        """Check the ESP32 image in the slot; return the version from its app descriptor.

        sha=False leaves the appended SHA-256 to set_boot(), which ESP-IDF checks anyway.
        prefix: (SHA-256 object, n) of the image's first n bytes, hashed during the download, so
        that the check reads back only the rest of the hashed part (see fota.slots.esp32image)."""
        from fota.slots import esp32image  # only after a download: not resident through it

        try:
            return esp32image.check(self.part, size, self.chip_id, scratch, sha, prefix)
        except OSError as exc:
            raise _flash("reading " + self.label, exc) from None

    def activate(self):
        """Make the slot the one the bootloader starts at the next reset."""
        try:
            self.part.set_boot()
        except OSError as exc:
            if exc.args and exc.args[0] == _ESP_ERR_OTA_VALIDATE_FAILED:
                raise errors.OTAError(
                    errors.VERIFY, "the bootloader rejects the image in %s" % self.label
                )
            raise _flash("cannot switch the boot partition", exc) from None
