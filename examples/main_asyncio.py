# main.py for an asyncio application: the OTA agent runs beside it as one more task.
#
# Copy this to the board as /main.py instead of the default one. The agent's turns (the
# settlement after a boot, each check, each window of a download: one Range request) run
# between the application's awaits, and its waits between polls are asyncio sleeps. asyncio
# itself takes a few KB of heap beside the agent's budget (the README's "The agent in your
# application" has the figure).
import asyncio

from fota.app import agent


def healthy():
    # False when this firmware cannot do its job (a sensor that does not answer ...): a new
    # image is then not confirmed, and the next reset boots the previous one again.
    return True


def on_event(kind, info):
    pass  # e.g. blink an LED while kind == "progress" (info["percent"])


async def application():
    while True:
        await asyncio.sleep(60)  # your application's work


async def main():
    agent.health_check(healthy)
    agent.on_event(on_event)
    asyncio.create_task(agent.task())
    await application()


asyncio.run(main())
