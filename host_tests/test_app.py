# The agent's resident part (fota.app.agent), on both runtimes: each phase's modules are released
# when it ends; an OTAError, a MemoryError or any other exception in a phase is one error event
# (and a backoff after a check), never the end of the agent; after a MemoryError the settlement
# runs again, before any check, until it went through.

import sys

import fakephases
from dual import is_micropython
from fakeclock import FakeClock

from fota.app import agent, events
from fota.core import errors

RUN_ON_MICROPYTHON = True
MICROPYTHON_HEAP = "2m"

CFG = {"poll_s": 600}


class _Stop(Exception):
    pass


class _Clock(FakeClock):
    """Ends the loop at its `waits`-th wait."""

    def __init__(self, waits):
        super().__init__()
        self.waits = waits

    def sleep_ms(self, ms):
        super().sleep_ms(ms)
        self.waits -= 1
        if self.waits == 0:
            raise _Stop()


class _Modules:
    """Puts back every module the agent's release() dropped: on CPython all test modules share
    one interpreter, and theirs must stay the ones they imported."""

    def __enter__(self):
        self.saved = dict(sys.modules)

    def __exit__(self, *exc):
        for name, mod in self.saved.items():
            sys.modules[name] = mod
            parent, _, leaf = name.rpartition(".")
            if parent in self.saved:
                setattr(self.saved[parent], leaf, mod)


def _fake_step(stage, module, fn, *args):
    return agent.guarded(stage, "fakephases", fn, *args)


def _run(waits, hungry=(), broken=(), buggy=()):
    fakephases.reset()
    fakephases.hungry.update(hungry)
    fakephases.broken.update(broken)
    fakephases.buggy.update(buggy)
    seen = []
    listener = events.subscribe(lambda kind, info: seen.append((kind, info)))
    try:
        with _Modules():
            agent.loop(dict(CFG), _Clock(waits), step=_fake_step)
    except _Stop:
        pass
    finally:
        events.unsubscribe(listener)
    return seen


def _story(seen):
    return [
        "%s:%s" % (kind, info["stage"]) if kind == "error" else kind
        for kind, info in seen
        if kind in ("error", "backoff", "idle")
    ]


def test_out_of_memory_in_a_check_is_an_error_and_a_backoff_then_the_next_check():
    seen = _run(waits=2, hungry={2})
    assert _story(seen) == ["error:check", "backoff", "idle"]
    error = [info for kind, info in seen if kind == "error"][0]
    assert error["reason"] == errors.NO_MEMORY
    assert fakephases.calls == ["settle", "poll", "poll"]
    backoff = [info for kind, info in seen if kind == "backoff"][0]
    assert backoff == {"sleep_s": 30, "failures": 1}


def test_out_of_memory_while_settling_runs_the_settlement_again_before_any_check():
    seen = _run(waits=2, hungry={1})
    assert _story(seen) == ["error:settle", "backoff", "idle"]
    assert fakephases.calls == ["settle", "settle", "poll"]  # nothing polled before it went


def test_failed_checks_back_off_longer_each_time_up_to_poll_s():
    seen = _run(waits=7, broken={2, 3, 4, 5, 6, 7})
    delays = [info["sleep_s"] for kind, info in seen if kind == "backoff"]
    assert delays == [30, 60, 120, 240, 480, 600]
    assert all(info["reason"] == errors.PROTOCOL for kind, info in seen if kind == "error")


def test_an_unexpected_exception_in_a_phase_is_an_error_event_and_the_loop_goes_on():
    seen = _run(waits=3, buggy={1, 3})
    assert _story(seen) == ["error:settle", "idle", "error:check", "backoff", "idle"]
    errors_seen = [info for kind, info in seen if kind == "error"]
    assert all(info["reason"] == "internal" for info in errors_seen)
    assert "TypeError" in errors_seen[0]["error"]
    assert fakephases.calls == ["settle", "poll", "poll", "poll"]


def test_idle_says_how_long_it_sleeps_and_the_heap_in_use():
    seen = _run(waits=1)
    idle = [info for kind, info in seen if kind == "idle"][0]
    assert 540 <= idle["sleep_s"] <= 660  # poll_s with +-10 % jitter
    if is_micropython():
        assert isinstance(idle["heap"], int) and idle["heap"] > 0


def test_a_phase_releases_the_modules_it_loaded():
    with _Modules():
        assert agent.guarded("check", "fota.core.version", "compare", "1.0.1", "1.0") == 1
        assert "fota.core.version" not in sys.modules
        import fota.core

        assert "version" not in fota.core.__dict__
        for name in ("fota.app.agent", "fota.app.events", "fota.core.errors"):
            assert name in sys.modules  # the resident part stays


def test_main_without_a_config_is_one_error_event_and_returns():
    from dual import rmtree, tmpdir

    tmp = tmpdir()
    seen = []
    listener = events.subscribe(lambda kind, info: seen.append((kind, info)))
    try:
        with _Modules():
            agent.main(tmp + "/ota.json", tmp + "/", _Clock(1))
            assert "fota.app.config" not in sys.modules  # the start phase's code went with it
    finally:
        events.unsubscribe(listener)
        rmtree(tmp)
    assert [kind for kind, info in seen] == ["error"]
    info = seen[0][1]
    assert (info["stage"], info["reason"]) == ("start", errors.CONFIG)
    assert "cannot read" in info["error"]


def test_a_ca_the_agent_cannot_use_stops_it_at_start_with_one_error_event():
    import json

    from dual import rmtree, tmpdir

    tmp = tmpdir()
    cfg = {
        "cloud": "onenet",
        "server": "https://ota.heclouds.com",
        "ca": tmp + "/ca.der",
        "onenet": {"product_id": "1", "device_id": "2", "key": "a2V5"},
    }
    seen = []
    listener = events.subscribe(lambda kind, info: seen.append((kind, info)))
    try:
        with open(tmp + "/ota.json", "w") as f:
            json.dump(cfg, f)
        with open(tmp + "/ca.der", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\n")
        with _Modules():
            agent.main(tmp + "/ota.json", tmp + "/", _Clock(1))  # returns: no poll loop
    finally:
        events.unsubscribe(listener)
        rmtree(tmp)
    assert [kind for kind, info in seen] == ["error"]
    info = seen[0][1]
    assert (info["stage"], info["reason"]) == ("start", errors.CONFIG)
    assert info["error"] == "ota.json: ca: %s/ca.der is not a DER certificate (PEM?)" % tmp


def test_the_mcu_hook_outlives_the_phases():
    from fota.slots import fileslot

    def hook(path, size, version):
        return True

    with _Modules():
        fileslot.set_hook(hook)
        try:
            agent.release()
            assert "fota.slots.fileslot" not in sys.modules
            from fota.slots import fileslot as again

            assert again._hook() is hook
        finally:
            fileslot.set_hook(None)


def test_poll_is_one_turn_for_an_application_with_its_own_loop():
    fakephases.reset()
    fakephases.hungry.update({3})
    cfg = dict(CFG)
    seen = []
    listener = agent.on_event(lambda kind, info: seen.append(kind))
    try:
        with _Modules():
            first = agent.poll(cfg, FakeClock(), step=_fake_step)  # settle and check
            second = agent.poll(cfg, FakeClock(), step=_fake_step)  # the check runs out of heap
            third = agent.poll(cfg, FakeClock(), step=_fake_step)
    finally:
        events.unsubscribe(listener)
    assert fakephases.calls == ["settle", "poll", "poll", "poll"]
    assert 540 <= first <= 660 and second == 30 and 540 <= third <= 660
    assert [k for k in seen if k in ("idle", "backoff")] == ["idle", "backoff", "idle"]


def test_the_agent_task_runs_beside_the_applications_tasks():
    import asyncio

    fakephases.reset()
    story = []

    async def application():
        for _ in range(6):
            story.append("app")
            await asyncio.sleep(0)

    async def main():
        agent_task = asyncio.create_task(agent.task(step=_fake_step))
        await application()
        agent_task.cancel()

    listener = events.subscribe(lambda kind, info: story.append(kind))
    try:
        with _Modules():
            asyncio.run(main())
    finally:
        events.unsubscribe(listener)
    turns = [k for k in story if k in ("app", "idle")]
    assert turns.count("app") == 6 and turns.count("idle") >= 3, story
    # the two take turns: no stretch of agent turns without the application in between
    assert "idle,idle" not in ",".join(turns), turns
    assert fakephases.calls[:3] == ["start", "settle", "poll"]


def test_a_paused_download_is_a_turn_that_asks_to_be_called_again_at_once():
    # a check returns "downloading" after its turn of requests: poll() hands the application
    # the pause (0, or a retry's backoff) instead of a poll interval, with no idle, no backoff
    fakephases.reset()
    fakephases.paused.update({2: 0, 3: 4})
    cfg = {"poll_s": 600, "version": "1.0.0", "cloud": "fake", "settled": False}
    seen = []
    listener = events.subscribe(lambda kind, info: seen.append(kind))
    try:
        with _Modules():
            waits = [agent.poll(cfg, FakeClock(), step=_fake_step) for _ in range(3)]
    finally:
        events.unsubscribe(listener)
    assert waits[:2] == [0, 4] and 540 <= waits[2] <= 660
    assert fakephases.calls == ["settle", "poll", "poll", "poll"]
    assert fakephases.turns == [1, 1, 1]  # one request (window) per turn
    assert [k for k in seen if k in ("idle", "backoff")] == ["idle"]
    assert cfg["failures"] == 0


def test_a_paused_phase_keeps_its_modules_and_a_finished_one_releases_them():
    fakephases.reset()
    fakephases.paused.update({1: 0})
    with _Modules():
        import fota.core.version  # noqa: F401  (a module a phase would load)

        cfg = {}
        agent.guarded("check", "fakephases", "poll", cfg, None, 1)
        kept = "fota.core.version" in sys.modules
        agent.guarded("check", "fakephases", "poll", cfg, None, 1)
        released = "fota.core.version" not in sys.modules
    assert kept and released
