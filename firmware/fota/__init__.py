# fota: an over-the-air update agent for MicroPython boards.
#
# The package is layered, one folder per layer: core (the update cycle, the download engine,
# digests, journal), transport (HTTP), slots (the hardware: the ESP32 board and its flash slots,
# a file for an attached MCU), clouds (one module per cloud API) and app (start-up, the poll
# loop, the config). Core receives the others as arguments and never imports hardware or cloud
# modules. Nothing touches hardware at import time. The layers' folders have no __init__.py:
# each one would cost heap on a board for nothing.
#
# mcu_hook, health and connect: the application's hook for an attached MCU's image, its health
# check and its network transport (fota.app.agent.mcu_hook, health_check, transport), kept here
# because this package stays loaded between the agent's phases.

__version__ = "0.1.0"
mcu_hook = None
health = None
connect = None
