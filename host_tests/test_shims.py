# The machine, network, micropython and clock shims behave as the device modules do.

import sys

import fakeclock
import machine
import network
from dual import is_micropython, raises

RUN_ON_MICROPYTHON = True


def test_clock_wraps_and_ticks_diff_stays_signed():
    clock = fakeclock.FakeClock()
    start = clock.ticks_ms()
    assert start > fakeclock.TICKS_PERIOD - 2000  # starts just before the wrap
    clock.sleep_ms(2000)
    now = clock.ticks_ms()
    assert now < start  # wrapped
    assert clock.ticks_diff(now, start) == 2000
    assert clock.ticks_diff(start, now) == -2000
    assert clock.ticks_add(start, 2000) == now
    assert clock.slept_ms == 2000
    deadline = clock.ticks_add(clock.ticks_ms(), 500)
    clock.advance(499)
    assert clock.ticks_diff(deadline, clock.ticks_ms()) == 1
    assert clock.time() == 1700000000 + 2


def test_ticks_add_and_diff_invert_each_other_across_the_wrap():
    # The ESP32 port's period is 2**30 (the unix port's is far larger, so it never wraps in tests).
    half = fakeclock.TICKS_PERIOD // 2
    for start in (0, 1, half, fakeclock.TICKS_PERIOD - 1):
        for delta in (-half, -half + 1, -1, 0, 1, 12345, half - 1):
            end = fakeclock.ticks_add(start, delta)
            assert 0 <= end < fakeclock.TICKS_PERIOD
            assert fakeclock.ticks_diff(end, start) == delta


def test_machine_reset_ends_the_program():
    exc = raises(SystemExit, machine.reset)
    assert exc.args[0] == machine.RESET_EXIT_STATUS
    assert len(machine.unique_id()) == 6
    assert machine.reset_cause() in (machine.PWRON_RESET, machine.SOFT_RESET)
    assert raises(ValueError, machine.freq, 123) is not None
    wdt = machine.WDT(timeout=2000)
    wdt.feed()
    wdt.feed()
    assert wdt.feeds == 2


def test_wlan_follows_the_link():
    wlan = network.WLAN(network.STA_IF)
    assert network.WLAN(network.STA_IF) is wlan
    wlan.active(False)
    assert raises(OSError, wlan.connect, "ssid", "key") is not None
    wlan.active(True)
    try:
        network.set_link(False)
        wlan.connect("ssid", "key")
        assert not wlan.isconnected()
        assert wlan.status() == network.STAT_NO_AP_FOUND
        network.set_link(True)
        wlan.connect("ssid", "key")
        assert wlan.isconnected()
        assert wlan.ifconfig()[0] == "127.0.0.1"
        network.set_link(False)  # the access point goes away after connecting
        assert not wlan.isconnected()
    finally:
        network.set_link(True)
        wlan.active(False)


def test_heap_lock_is_real_on_micropython():
    import micropython

    buf = bytearray(16)
    refused = False
    micropython.heap_lock()
    try:
        buf[0] = 1  # no allocation: fine
        try:
            bytearray(64)
        except MemoryError:
            refused = True
    finally:
        micropython.heap_unlock()
    assert refused == is_micropython()
    if not is_micropython():
        assert raises(RuntimeError, micropython.heap_unlock) is not None
    assert sys.implementation.name in ("micropython", "cpython")
