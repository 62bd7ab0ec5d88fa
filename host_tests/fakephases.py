# Stand-in phases for the poll loop's tests (fota.app.agent.loop): settle() and poll() count their
# calls and raise MemoryError or an OTAError at the calls the test lists. Not a fota module, so
# the loop's release of phase modules keeps its counters.

from fota.core.errors import PROTOCOL, OTAError

calls = []
hungry = set()  # call numbers (1, 2, ...) that raise MemoryError
broken = set()  # call numbers that raise an OTAError
buggy = set()  # call numbers that raise a TypeError (a bug, or an answer nobody foresaw)
paused = {}  # call number -> seconds: that check returns with its download paused
turns = []  # the turn each poll() was given


def reset():
    del calls[:]
    hungry.clear()
    broken.clear()
    buggy.clear()
    paused.clear()
    del turns[:]


def _call(name):
    calls.append(name)
    n = len(calls)
    if n in hungry:
        raise MemoryError()
    if n in broken:
        raise OTAError(PROTOCOL, "the cloud answered nonsense")
    if n in buggy:
        raise TypeError("can't convert int to str")
    return "none" if name == "poll" else None


def run(path, root):
    """The start phase: a checked config that polls without waiting."""
    calls.append("start")
    return {"poll_s": 0, "version": "1.0.0", "cloud": "fake"}


def settle(cfg, clock):
    return _call("settle")


def poll(cfg, clock, turn=0):
    cfg.pop("downloading", None)
    turns.append(turn)
    result = _call("poll")
    wait = paused.get(len(calls))
    if wait is None:
        return result
    cfg["downloading"] = "a paused check"
    return wait  # the seconds before the paused download goes on
