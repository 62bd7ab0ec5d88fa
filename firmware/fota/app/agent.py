# The agent's resident part: start-up, the poll loop, and the phases it runs one at a time.
#
# Heap is what a board has least of, so only this module, the events and the error type stay
# loaded. Each phase imports what it needs when it starts and drops it when it ends, so the
# agent's peak is its largest phase, not the sum of all, and between polls it holds little
# more than the checked config:
#   start   (fota.app.boot)   read and check /ota.json and /board.json, the running version
#   settle  (fota.app.cycle)  after a reboot: confirm the new image or report the rollback
#   check   (fota.app.cycle)  ask the cloud; download, verify and activate an offer, then reset
#                             (a download goes one window per turn: between two turns the check
#                             stays loaded, kept in the config as "downloading", and the
#                             application runs)
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
_TURN = const(1)  # download requests (windows) per turn: then the application runs again


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
        if not (args and args[0].__class__ is dict and "downloading" in args[0]):
            release()  # (a paused download, kept in the config, keeps its code)


def _jittered(seconds):
    import os

    spread = seconds // 10
    if spread <= 0:
        return seconds
    return seconds - spread + int.from_bytes(os.urandom(2), "big") % (2 * spread + 1)


def poll(cfg, clock=None, step=guarded):
    """One turn of the agent, for an application with a loop of its own: the settlement after a
    boot until it has gone through, then one check (which may download, verify, activate and
    reset), or the next window of a download in progress. -> the seconds to wait before the next
    turn: 0 or a retry's backoff while a download goes on, poll_s with jitter after an idle
    event, or a backoff after a failure. cfg: what start() returned. Never raises."""
    if clock is None:
        import time as clock
    if not cfg.get("settled"):
        cfg["settled"] = step("settle", _CYCLE, "settle", cfg, clock) != NO_MEMORY
    result = step("check", _CYCLE, "poll", cfg, clock, _TURN) if cfg["settled"] else NO_MEMORY
    if "downloading" in cfg:  # a download paused: it goes on at the next turn
        return int(result)
    if result == "failed" or result == NO_MEMORY:
        failures = cfg["failures"] = cfg.get("failures", 0) + 1
        delay = min(_BACKOFF_S << min(failures - 1, _MAX_SHIFT), cfg["poll_s"])
        events.emit("backoff", {"sleep_s": delay, "failures": failures})
        return delay
    cfg["failures"] = 0
    delay = _jittered(cfg["poll_s"])
    gc.collect()
    heap = gc.mem_alloc() if hasattr(gc, "mem_alloc") else None  # None on CPython
    events.emit("idle", {"sleep_s": delay, "heap": heap})
    return delay


def loop(cfg, clock, step=guarded):
    """Settle, then poll forever. step(stage, module, fn, cfg, clock) runs one phase."""
    while True:
        delay = poll(cfg, clock, step)
        # whole seconds: a poll_s beyond the port's small ints must not overflow the ticks
        while delay > 0:
            n = delay if delay < 3600 else 3600
            clock.sleep_ms(n * 1000)
            delay -= n


async def task(path=None, root=None, step=guarded):
    """The agent as an asyncio task beside the application's own:
    asyncio.create_task(agent.task()). Each turn (settlement, check, one window of a download)
    runs between two of the application's awaits; the waits between turns are asyncio sleeps."""
    import asyncio

    cfg = start(path, root, step)
    while cfg is not None:
        delay = poll(cfg, None, step)
        while True:  # at least one await per turn, even with no wait
            n = delay if delay < 3600 else 3600
            await asyncio.sleep(n)
            delay -= n
            if delay <= 0:
                break


def start(path=None, root=None, step=guarded):
    """Check ota.json and board.json once: -> the config for poll(), or None after an error
    event (the agent cannot run with that config). root: the folder of the agent's files, by
    default the current one ("/" on an ESP32, /flash/ on Zephyr); path: root + "ota.json"."""
    cfg = step("start", "fota.app.boot", "run", path, root)
    if not isinstance(cfg, dict):
        return None
    events.emit("agent", {"version": cfg["version"], "cloud": cfg["cloud"]})
    return cfg


def health_check(fn):
    """Register the application's health check, fn() -> True when the application does its
    job. After a new image boots, the agent runs it (after its own: network and cloud) before
    confirming the image; False or an exception leaves the image unconfirmed, and the next reset
    goes back to the previous one, which reports the failure."""
    import fota  # kept loaded between the phases

    fota.health = fn


def mcu_hook(fn):
    """Register fn(path, size, version) -> True when an attached MCU took its image (MXCHIP's
    "mcu" files): see fota.slots.fileslot."""
    import fota

    fota.mcu_hook = fn


def transport(fn):
    """Register fn(host, port, tls) -> a connected stream for the HTTP client instead of a
    socket (a modem that offloads sockets and TLS): see fota.transport.http."""
    import fota

    fota.connect = fn


on_event = events.subscribe  # on_event(fn): fn(kind, info) for every event, info a plain dict


def main(path=None, root=None, clock=None):
    """The blocking entry point: start, then settle and poll forever. Never raises: the board
    keeps running its app."""
    if clock is None:
        import time as clock
    try:
        cfg = start(path, root)
        if cfg is not None:
            loop(cfg, clock)
    except Exception as exc:  # a bug in the agent must not take the board's REPL with it
        events.emit("error", {"stage": "start", "reason": "internal", "error": repr(exc)})
