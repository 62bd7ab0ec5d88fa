# The agent's resident part: start-up, the poll loop, and the phases it runs one at a time.
#
# Heap is what a board has least of, so only this module, the events and the error type stay
# loaded. Each phase imports what it needs when it starts and drops it when it ends, so the
# agent's peak is its largest phase, not the sum of all, and between polls it holds little
# more than the checked config:
#   start   (fota.app.boot)   read and check /ota.json and /board.json, the running version
#   settle  (fota.app.cycle)  after a reboot: confirm the new image or report the rollback
#   check   (fota.app.cycle)  ask the cloud; download, verify and activate an offer, then reset
#
# Poll loop: one check per poll_s (with +-10% jitter, so a fleet does not hit the cloud in step);
# after a failure the wait grows 30 s, 60 s, 120 s ... up to poll_s. Before a full wait it emits
# "idle" with the heap in use. Running out of heap does not end the agent: the phase is given
# up with an error event, the garbage collected, and the loop tries again after a backoff; no
# check runs before the settlement has gone through.

import gc
import sys

from micropython import const

from fota.app import events
from fota.core.errors import NO_MEMORY, OTAError

_BACKOFF_S = const(30)
_MAX_SHIFT = const(16)
# what stays loaded between phases: this module and what it imports (fota itself keeps the
# application's MCU hook)
_KEEP = const(
    ("fota", "fota.app", "fota.app.agent", "fota.app.events", "fota.core", "fota.core.errors")
)
_CYCLE = const("fota.app.cycle")


def release(names=None):
    """Drop every agent module a phase loaded (and its code) from the heap, or only `names`."""
    mods = sys.modules
    if names is None:
        names = [n for n in mods if n.startswith("fota.") and n not in _KEEP]
    for name in names:
        if mods.pop(name, None) is None:
            continue
        parent, _, leaf = name.rpartition(".")
        parent = mods.get(parent)
        if parent is not None and leaf in parent.__dict__:
            delattr(parent, leaf)
    gc.collect()


def guarded(stage, module, fn, *args):
    """module.fn(*args) as one phase: its result, or "failed" (an OTAError, or any other
    exception: reason "internal") or "no_memory" (a MemoryError) after an error event. The
    modules the phase loaded are released after it."""
    try:
        mod = __import__(module, None, None, (fn,))
        return getattr(mod, fn)(*args)
    except OTAError as exc:
        events.emit("error", {"stage": stage, "reason": exc.reason, "error": exc.message})
        return "failed"
    except MemoryError:
        mod = None
        gc.collect()  # what the phase held is garbage now: room for the event
        events.emit("error", {"stage": stage, "reason": NO_MEMORY, "error": "out of memory"})
        return NO_MEMORY
    except Exception as exc:  # a bug, or an answer no check foresaw: the loop goes on
        events.emit("error", {"stage": stage, "reason": "internal", "error": repr(exc)})
        return "failed"
    finally:
        mod = None
        release()


def _jittered(seconds):
    import os

    spread = seconds // 10
    if spread <= 0:
        return seconds
    return seconds - spread + int.from_bytes(os.urandom(2), "big") % (2 * spread + 1)


def loop(cfg, clock, step=guarded):
    """Settle, then poll forever. step(stage, module, fn, cfg, clock) runs one phase."""
    settled = step("settle", _CYCLE, "settle", cfg, clock) != NO_MEMORY
    failures = 0
    poll_s = cfg["poll_s"]
    while True:
        result = step("check", _CYCLE, "poll", cfg, clock) if settled else NO_MEMORY
        if result == "failed" or result == NO_MEMORY:
            failures += 1
            delay = min(_BACKOFF_S << min(failures - 1, _MAX_SHIFT), poll_s)
            events.emit("backoff", {"sleep_s": delay, "failures": failures})
        else:
            failures = 0
            delay = _jittered(poll_s)
            gc.collect()
            heap = gc.mem_alloc() if hasattr(gc, "mem_alloc") else None  # None on CPython
            events.emit("idle", {"sleep_s": delay, "heap": heap})
        # whole seconds: a poll_s beyond the port's small ints must not overflow the ticks
        while delay > 0:
            n = delay if delay < 3600 else 3600
            clock.sleep_ms(n * 1000)
            delay -= n
        if not settled:
            settled = step("settle", _CYCLE, "settle", cfg, clock) != NO_MEMORY


def main(path="/ota.json", root="/", clock=None):
    """The boot-time entry point (main.py). Never raises: the board keeps running its app."""
    if clock is None:
        import time as clock
    try:
        cfg = guarded("start", "fota.app.boot", "run", path, root)
        if isinstance(cfg, dict):
            events.emit("agent", {"version": cfg["version"], "cloud": cfg["cloud"]})
            loop(cfg, clock)
    except Exception as exc:  # a bug in the agent must not take the board's REPL with it
        events.emit("error", {"stage": "start", "reason": "internal", "error": repr(exc)})
