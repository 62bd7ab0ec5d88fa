# The download engine with every steady-state pump run under micropython.heap_lock(): any
# allocation in it raises MemoryError. The production engine has no such hook; the tests (and
# make bench) lock the heap around the pump themselves.

import micropython

from fota.core.download import Downloader


class LockedDownloader(Downloader):
    pumped_locked = 0  # bytes moved by pumps with the heap locked

    def _pump(self, read, stop):
        before = self._written + self._pos
        micropython.heap_lock()
        try:
            Downloader._pump(self, read, stop)
        finally:
            micropython.heap_unlock()
        self.pumped_locked += self._written + self._pos - before
