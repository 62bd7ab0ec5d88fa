# The device app's poll loop (fota.app.agent.App.run_forever) when the heap runs short, on both
# runtimes: a MemoryError in the check or in the settlement after a reboot is an error event and a
# backoff, never the end of the agent, and the settlement runs again before anything is polled.

from dual import rmtree, tmpdir
from fakeclock import FakeClock
from fota.app import config
from fota.app.agent import App
from fota.core import errors

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"

CONFIG = {
    "cloud": "onenet",
    "server": "http://127.0.0.1:9",
    "allow_http": True,
    "poll_s": 600,
    "onenet": {"product_id": "123123", "device_id": "522747162", "key": "a2V5"},
}


class _Stop(Exception):
    pass


class _Clock(FakeClock):
    """Ends run_forever at its `waits`-th wait."""

    def __init__(self, waits):
        super().__init__()
        self.waits = waits

    def sleep_ms(self, ms):
        super().sleep_ms(ms)
        self.waits -= 1
        if self.waits == 0:
            raise _Stop()


class _Board:
    """Runs 1.0.0; running_version() fails with MemoryError at the calls listed in `hungry`."""

    profile = {}

    def __init__(self, hungry=()):
        self.hungry = hungry
        self.calls = 0

    def network_up(self, wifi, clock):
        return True

    def confirm(self):
        raise AssertionError("nothing was in flight: nothing to confirm")

    def reset(self):
        raise AssertionError("no update: no reset")

    def running_version(self):
        self.calls += 1
        if self.calls in self.hungry:
            raise MemoryError()
        return "1.0.0"


class _Cloud:
    """No update; check() fails with MemoryError at the calls listed in `hungry`."""

    def __init__(self, hungry=()):
        self.hungry = hungry
        self.checks = 0

    def check(self, version):
        self.checks += 1
        if self.checks in self.hungry:
            raise MemoryError()
        return None


def _run(board, cloud, waits):
    tmp = tmpdir()
    events = []
    try:
        app = App(config.validate(dict(CONFIG)), board, _Clock(waits), tmp + "/",
                  lambda kind, info: events.append((kind, info)))  # fmt: skip
        app.cloud = cloud
        try:
            app.run_forever()
        except _Stop:
            pass
    finally:
        rmtree(tmp)
    return events


def _story(events):
    return [
        "%s:%s" % (kind, info["stage"]) if kind == "error" else kind
        for kind, info in events
        if kind in ("error", "backoff", "idle", "no_update")
    ]


def test_out_of_memory_in_a_check_is_an_error_and_a_backoff_then_the_next_check():
    cloud = _Cloud(hungry=(1,))
    events = _run(_Board(), cloud, waits=2)
    assert _story(events) == ["error:check", "backoff", "no_update", "idle"]
    error = [info for kind, info in events if kind == "error"][0]
    assert error["reason"] == errors.NO_MEMORY
    assert cloud.checks == 2


def test_out_of_memory_while_settling_runs_the_settlement_again_before_any_check():
    # calls of running_version(): 1 the "agent" event, 2 the settlement (fails), 3 it again, 4
    # the check
    board = _Board(hungry=(2,))
    cloud = _Cloud()
    events = _run(board, cloud, waits=2)
    assert _story(events) == ["error:settle", "backoff", "no_update", "idle"]
    assert board.calls == 4
    assert cloud.checks == 1  # nothing was polled before the settlement had run
