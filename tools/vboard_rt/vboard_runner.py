# The virtual board's MicroPython side: what the ESP32 port's startup and _boot.py do on a board.
#
# tools/vboard.py runs `micropython -X heapsize=H -m vboard_runner BUDGET [repl]` with the
# .mpy files (this runner and the device shims) on MICROPYPATH, and FOTA_FLASH, FOTA_CHIP,
# FOTA_RUNNING, FOTA_RESET_CAUSE (and FOTA_POWER_CUT) in the environment. In order:
#   1. load the shims esp32, machine, network (and ssl where the build has only tls): C or frozen
#      modules on a board, so they are loaded before the app's heap is measured and stay in
#      sys.modules;
#   2. mount the flash file's `vfs` partition as / through esp32.Partition (auto-detected like
#      vfs.mount(bdev, "/") in _boot.py; a partition without a file system is formatted as
#      LittleFS, like inisetup.py) in place of the host's root, so the firmware sees only the
#      board's files;
#   3. sys.path = ['', '.frozen', '/lib'] as on the ESP32 port;
#   4. pin the free heap at BUDGET bytes with a ballast, so the app gets the board's heap budget
#      whatever the emulation itself costs, and print "@@vboard ready FREE ALLOC" (gc.mem_free()
#      and gc.mem_alloc() after a collection);
#   5. run /boot.py, then /main.py if boot.py succeeded, in one __main__ namespace; with `repl`,
#      then serve the board's REPL on stdin/stdout (vboard_console.py) for mpremote, which prints
#      the "ready" line itself (a Ctrl-C may follow it at once).
# A traceback ends the process with status 1; machine.reset() with machine.RESET_EXIT_STATUS.
# Lines for vboard itself start with "@@vboard ".

import gc
import os
import sys

import esp32
import machine  # noqa: F401  (loaded now: a built-in module on a board)
import network  # noqa: F401
import vfs
from micropython import const

try:
    import ssl  # noqa: F401  (frozen on a board; tools/runtime_shims gives it to builds lacking it)
except ImportError:
    pass

_INITIAL_BOOT_PY = const("""\
# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
#import webrepl
#webrepl.start()
""")


def _mount():
    bdev = esp32.Partition("vfs")
    vfs.umount("/")
    try:
        vfs.mount(bdev, "/")
    except OSError:
        print("@@vboard formatting the vfs partition")
        vfs.VfsLfs2.mkfs(bdev)
        vfs.mount(bdev, "/")
        with open("/boot.py", "w") as f:
            f.write(_INITIAL_BOOT_PY)
    os.chdir("/")


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

    # Ctrl-C (SIGINT from the bridge) raises KeyboardInterrupt, as a board's UART does; some
    # builds leave the handler unset for `-m` modules, and SIGINT would then kill the board
    micropython.kbd_intr(3)
    budget = int(sys.argv[1])
    console = None
    if sys.argv[2:] == ["repl"]:
        import vboard_console  # before the host's files go away

        console = vboard_console.Console(_run, {"__name__": "__main__"})
    _mount()
    sys.path[:] = ["", ".frozen", "/lib"]
    sys.argv[:] = []
    if console is not None:
        console.keep = set(sys.modules)
    ballast = _pin_heap(budget)
    gc.collect()
    # FREE first, as vboard has always parsed it; ALLOC, the emulation's and the ballast's share,
    # is the baseline of any gc.mem_alloc() the app reports (make bench's idle heap)
    ready = "@@vboard ready %d %d" % (gc.mem_free(), gc.mem_alloc())
    if console is not None:
        console.serve(ready)  # prints it where a Ctrl-C from the bridge is handled
    print(ready)
    del ready
    namespace = {"__name__": "__main__"}
    if _exists("boot.py"):
        _run("boot.py", namespace)
    if _exists("main.py"):
        _run("main.py", namespace)
    return ballast


main()
