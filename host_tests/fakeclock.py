# A clock with MicroPython's tick semantics that tests drive by hand.
#
# ticks_ms() wraps at TICKS_PERIOD (2**30 on every MicroPython port), and a FakeClock starts just
# before the wrap by default, so any code that subtracts ticks instead of calling ticks_diff()
# breaks at once. sleep_ms() advances the virtual time; nothing waits for real. The object has the
# same functions as MicroPython's `time` module, so code that takes "a clock" accepts either.

TICKS_PERIOD = 1 << 30
_TICKS_MAX = TICKS_PERIOD - 1
_TICKS_HALF = TICKS_PERIOD // 2


def ticks_add(ticks, delta):
    return (ticks + delta) & _TICKS_MAX


def ticks_diff(end, start):
    """Signed difference end - start, as MicroPython's time.ticks_diff()."""
    return ((end - start + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


class FakeClock:
    def __init__(self, start_ms=TICKS_PERIOD - 1500, epoch_s=1700000000):
        self.now_ms = start_ms  # unbounded; the ticks seen by code wrap
        self.epoch_s = epoch_s
        self.slept_ms = 0
        self._start = start_ms

    def ticks_ms(self):
        return self.now_ms & _TICKS_MAX

    def ticks_us(self):
        return (self.now_ms * 1000) & _TICKS_MAX

    ticks_add = staticmethod(ticks_add)
    ticks_diff = staticmethod(ticks_diff)

    def advance(self, ms):
        self.now_ms += ms

    def sleep_ms(self, ms):
        if ms > 0:
            self.now_ms += ms
            self.slept_ms += ms

    def sleep(self, s):
        self.sleep_ms(int(s * 1000))

    def time(self):
        return self.epoch_s + (self.now_ms - self._start) // 1000
