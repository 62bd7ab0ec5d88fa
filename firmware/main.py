# main.py: your application, with the OTA agent beside it.
#
# At every boot the agent settles the update in flight (it confirms a new image once the
# network, the cloud and your health check pass, or reports the bootloader's rollback), then
# polls the cloud configured in /ota.json, downloading and switching to new firmware when the
# cloud offers it. It never raises: its events are JSON lines on the console, and on_event()
# hands them to your code as dicts. For an asyncio application, see examples/main_asyncio.py.
import time

from fota.app import agent


def healthy():
    # False when this firmware cannot do its job (a sensor that does not answer ...): a new
    # image is then not confirmed, and the next reset boots the previous one again.
    return True


def on_event(kind, info):
    pass  # e.g. blink an LED while kind == "progress" (info["percent"])


def work():
    pass  # your application's work, a little at a time


agent.health_check(healthy)
agent.on_event(on_event)
cfg = agent.start()  # None after an error event: the config is wrong, the agent stays out
while True:
    due = time.time() + agent.poll(cfg) if cfg else None  # poll: one turn, then seconds to wait
    while True:  # your work at least once a turn: also between the windows of a download
        work()
        if due is not None and time.time() >= due:
            break
        time.sleep_ms(100)
