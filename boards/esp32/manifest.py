# The MicroPython firmware of an ESP32 board with the agent frozen in. In a MicroPython checkout,
# with ESP-IDF set up and FOTA the path of this repository:
#   make -C ports/esp32 BOARD=ESP32_GENERIC BOARD_VARIANT=OTA \
#       FROZEN_MANIFEST=$FOTA/boards/esp32/manifest.py
# The port's own manifest comes first: FROZEN_MANIFEST replaces it, and its frozen modules are
# part of every ESP32 firmware (_boot.py mounts the file system, inisetup.py formats it).
include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821
include("../../firmware/manifest.py")  # noqa: F821
