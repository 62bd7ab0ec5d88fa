# Shim of MicroPython's `micropython` module, for CPython only: the unix port has the real one
# (a built-in that no file overrides), whose heap_lock() proves loops allocate nothing.
#
# On CPython heap_lock() cannot stop allocation; it counts nesting so that unbalanced lock/unlock
# pairs still show up as test failures.

import time as _time

_lock_depth = [0]

# MicroPython's millisecond ticks on CPython's time module, for the agent's code that runs on
# both (every agent module imports this module first, for const()). No wrap-around here.
if not hasattr(_time, "ticks_ms"):
    _time.ticks_ms = lambda: int(_time.monotonic() * 1000)  # type: ignore[attr-defined]
    _time.ticks_add = lambda ticks, delta: ticks + delta  # type: ignore[attr-defined]
    _time.ticks_diff = lambda end, start: end - start  # type: ignore[attr-defined]


def const(expr):
    return expr


def heap_lock():
    _lock_depth[0] += 1
    return _lock_depth[0] - 1


def heap_unlock():
    if _lock_depth[0] == 0:
        raise RuntimeError("heap_unlock() without heap_lock()")
    _lock_depth[0] -= 1
    return _lock_depth[0]


def heap_locked():
    return _lock_depth[0]


def alloc_emergency_exception_buf(size):
    return None


def mem_info(verbose=None):
    print("mem: total=0, current=0, peak=0 (CPython shim)")


def opt_level(level=None):
    return 0 if level is None else None


def schedule(func, arg):
    func(arg)


def kbd_intr(chr):
    return None


def native(f):
    return f


def viper(f):
    return f
