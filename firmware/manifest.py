# The single source of the device package: every module of firmware/fota. boards/esp32/manifest.py
# includes it to freeze the agent into a MicroPython build (FROZEN_MANIFEST=, beside the port's
# own modules); `make package-json` makes mip's firmware/package.json of it, `make mip` the .mpy
# package; `make mpy` compiles the same modules.
metadata(description="OTA update agent for MicroPython boards", version="0.1.0")  # noqa: F821

package("fota")  # noqa: F821
