# A slot that is a file: images meant for a microcontroller attached to the board (MXCHIP's
# "mcu" files), stored on the board's file system, then handed to the application's hook (e.g.
# over a UART to the MCU's bootloader), whose result decides the outcome.
#
# Same interface as Esp32Slot, so the engine streams, hashes, journals and resumes the same way.
# The file is written in whole 4096-byte blocks (the last one padded with 0xFF), so it may be
# longer than the image: the hook gets the exact size. Nothing touches the firmware slots.

from micropython import const

from fota.core import errors

_BLOCK = const(4096)


def set_hook(fn):
    """Register fn(path, size, version) -> True when the MCU took the image (False or an
    exception: it did not). The application calls this before starting the agent."""
    import fota  # kept loaded between the agent's phases, unlike this module

    fota.mcu_hook = fn


def _hook():
    import fota

    return fota.mcu_hook


class FileSlot:
    def __init__(self, path, capacity, version=None):
        self.path = path
        self.capacity = capacity
        self.version = version
        self.label = path
        self.size = 0
        self._f = None

    def begin(self, size):
        if size > self.capacity:
            raise errors.OTAError(
                errors.NO_SPACE,
                "image of %d bytes is over the %d bytes allowed for %s"
                % (size, self.capacity, self.path),
            )
        if _hook() is None:
            raise errors.OTAError(
                errors.CONFIG, "no MCU hook registered (fota.slots.fileslot.set_hook)"
            )
        self.size = size
        try:
            self._f = open(self.path, "r+b")  # keep what a resumed download already wrote
        except OSError:
            try:
                self._f = open(self.path, "w+b")
            except OSError as exc:
                raise errors.OTAError(errors.FLASH, "cannot create %s: %s" % (self.path, exc))

    def write(self, block, buf):
        f = self._f
        if f is None:
            raise errors.OTAError(errors.FLASH, "write before begin")
        try:
            f.seek(block * _BLOCK)
            f.write(buf)
        except OSError as exc:
            raise errors.OTAError(errors.NO_SPACE, "writing %s failed: %s" % (self.path, exc))

    def readblocks(self, block, buf, offset=0):
        f = self._f
        if f is None:
            raise OSError(9)  # EBADF
        f.flush()
        f.seek(block * _BLOCK + offset)
        n = f.readinto(buf)
        if n != len(buf):
            raise OSError(5)  # EIO: shorter than the journal said

    def read(self, block, buf):
        try:
            self.readblocks(block, buf)
        except OSError as exc:
            raise errors.OTAError(errors.FLASH, "reading %s failed: %s" % (self.path, exc))

    def validate(self, size, scratch, sha=True):
        """MCU images have no format the agent knows: the offer's digests are the check."""
        if self._f is not None:
            self._f.flush()
        return self.version

    def close(self):
        """Close the file (the engine calls it when a download ends, well or not)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def activate(self):
        """Hand the verified image to the application's hook."""
        self.close()
        hook = _hook()
        try:
            ok = hook(self.path, self.size, self.version) if hook else False
        except Exception as exc:  # the application's code: any failure is the MCU's failure
            raise errors.OTAError(errors.FLASH, "the MCU hook failed: %s" % (exc,))
        if ok is not True:
            raise errors.OTAError(errors.FLASH, "the MCU hook refused the image")
