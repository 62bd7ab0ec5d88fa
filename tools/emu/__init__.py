# tools/emu: local emulators of the clouds' device OTA APIs, on aiohttp.
#
#   import emu                                   # with tools/ on sys.path
#   server = emu.start("onenet", image="fw.bin", version="2.0.0")
#   server.url, server.control                   # "http://127.0.0.1:PORT", ".../_emu"
#   server.stop()
#
# One module per cloud (CLOUDS below, imported when used); base.py holds the control API,
# records and faults, server.py the background server. tools/emulator.py is the command line
# and documents the clouds, the control API and the defaults.

import importlib

from .records import ControlError, EmuError
from .server import Server

__all__ = ["CLOUDS", "ControlError", "EmuError", "Server", "emulator_class", "start"]

# cloud name -> (module, class)
CLOUDS = {
    "onenet": ("onenet", "OneNet"),
    "onenet-fuse": ("onenet_fuse", "OneNetFuse"),
    "sagoo": ("sagoo", "Sagoo"),
    "mxchip": ("mxchip", "Mxchip"),
    "aliyun": ("aliyun", "Aliyun"),
}


def emulator_class(cloud):
    if cloud not in CLOUDS:
        raise EmuError("unknown cloud %r (known: %s)" % (cloud, ", ".join(CLOUDS)))
    module, name = CLOUDS[cloud]
    return getattr(importlib.import_module("." + module, __name__), name)


def start(
    cloud, image=None, version=None, tls=None, host="127.0.0.1", port=0, url_host=None, **options
):
    """Serve `cloud` with `image` (a path; None: no update) as the pending update `version`.

    tls: (cert PEM path, key PEM path) or None; options: the cloud's credentials and reset
    defaults (see each class's CREDENTIALS and OPTIONS). -> a running Server. EmuError if the
    image cannot be read, an option is unknown or the port cannot be used."""
    emulator = emulator_class(cloud)(image, version, **options)
    return Server(emulator, host=host, port=port, tls=tls, url_host=url_host)
