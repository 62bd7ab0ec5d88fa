# The single source of the device package: freeze it into a MicroPython build with
# `FROZEN_MANIFEST=.../firmware/manifest.py`, or let `make mpy` compile the same modules.
metadata(description="OTA update agent for MicroPython boards", version="0.1.0")  # noqa: F821

package("fota")  # noqa: F821
