# The virtual nRF board's MicroPython side: what the zephyr port's startup (main.c) and its frozen
# _boot.py do on a board.
#
# tools/vboard_nrf.py runs `micropython -X heapsize=H -m vboard_zephyr_runner BUDGET` with the
# .mpy files (this runner and the device stand-ins) on MICROPYPATH, and FOTA_FLASH, FOTA_BOARD
# (and FOTA_POWER_CUT) in the environment. In order:
#   1. load the stand-ins zephyr and machine, built-in modules on a board, before the app's heap
#      is measured; machine keeps only what the zephyr port's has (reset, soft_reset, idle, WDT,
#      and a reset_cause() that warns and returns 42); there is no network module, and no
#      ssl either (the port builds without TLS);
#   2. as _boot.py: open the "storage" area as zephyr.FlashArea(*FlashArea.areas["storage"]),
#      mount it at /flash (formatted as LittleFS when it does not mount), with nothing at / (the
#      host's files are gone), cwd /flash, sys.path ['', '.frozen', '/flash/lib'];
#   3. pin the free heap at BUDGET bytes with a ballast and print "@@vboard ready FREE ALLOC";
#   4. run boot.py, then main.py if boot.py succeeded, from the cwd, in one __main__ namespace.
# A traceback ends the process with status 1; machine.reset() with machine.RESET_EXIT_STATUS.
# Lines for vboard itself start with "@@vboard ".

import gc
import os
import sys

import machine
import vfs
import zephyr

_STORAGE = "storage"
_FLASH = "/flash"
# what the zephyr port's machine module lacks (no MICROPY_PY_MACHINE_BARE_METAL_FUNCS, no reset
# cause constants)
_NOT_ON_ZEPHYR = (
    "unique_id",
    "freq",
    "deepsleep",
    "PWRON_RESET",
    "HARD_RESET",
    "WDT_RESET",
    "DEEPSLEEP_RESET",
    "SOFT_RESET",
)


def _reset_cause():
    print("Warning: machine_reset_cause is not implemented")
    return 42


def _machine():
    names = machine.__dict__
    for name in _NOT_ON_ZEPHYR:
        if name in names:
            del names[name]
    machine.reset_cause = _reset_cause


def _mount():
    bdev = zephyr.FlashArea(*zephyr.FlashArea.areas[_STORAGE])
    vfs.umount("/")
    try:
        vfs.mount(bdev, _FLASH)
    except OSError:
        print("@@vboard formatting the storage partition")
        vfs.VfsLfs2.mkfs(bdev)
        vfs.mount(bdev, _FLASH)
    os.chdir(_FLASH)


def _pin_heap(budget):
    """Allocate what is free beyond `budget` bytes; returns the ballast to keep alive."""
    ballast = []
    size = 1 << 30
    gc.collect()
    while True:
        extra = gc.mem_free() - budget
        if extra < 256:
            return ballast
        size = min(size, extra - 64)
        try:
            ballast.append(bytearray(size))
        except MemoryError:
            size //= 2
            if size < 256:
                return ballast


def _exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False


def _run(name, namespace):
    with open(name) as f:
        source = f.read()
    code = compile(source, name, "exec")
    del source
    exec(code, namespace)


def main():
    import micropython

    micropython.kbd_intr(3)
    budget = int(sys.argv[1])
    _machine()
    _mount()
    sys.path[:] = ["", ".frozen", _FLASH + "/lib"]
    sys.argv[:] = []
    ballast = _pin_heap(budget)
    gc.collect()
    print("@@vboard ready %d %d" % (gc.mem_free(), gc.mem_alloc()))
    namespace = {"__name__": "__main__"}
    if _exists("boot.py"):
        _run("boot.py", namespace)
    if _exists("main.py"):
        _run("main.py", namespace)
    return ballast


main()
