# The start phase (fota.app.agent): /ota.json checked once, the board profile read, the running
# version found. Its code is released when it returns: the poll loop keeps only the result, one
# dict of the settings the other phases need.
#
# The agent's files live in its root: the folder it runs in, "/" on an ESP32 and /flash/ on a
# Zephyr board (whose _boot.py mounts the storage partition there and changes into it), so the
# same main.py runs on both. The profile's "slot" names the board adapter ("mcuboot", or an
# ESP32's A/B slots when absent): its module goes into the config as "board", here only.

from fota.core.errors import CONFIG, OTAError


def profile(path):
    """The board profile written by `make deploy`, `make fsimage` or the virtual board: a dict,
    {} when the board has none (a plain ESP32). OTAError (config) when it is not JSON."""
    import json

    try:
        with open(path) as f:
            data = json.load(f)
    except OSError:
        return {}
    except ValueError:
        raise OTAError(CONFIG, "board.json is not valid JSON") from None
    if not isinstance(data, dict):
        raise OTAError(CONFIG, "board.json is not a JSON object")
    return data


def home(root=None):
    """The agent's root folder, ending in "/": root, or the current directory."""
    if root is None:
        import os

        root = os.getcwd()
    return root.rstrip("/") + "/"


def board(cfg):
    """The Board of the adapter that a profile's "slot" names (an ESP32's when it names none),
    made from cfg (the profile, or the config with the profile's keys); the module's name
    replaces "slot" in cfg, as "board"."""
    name = cfg["board"] = (
        "fota.slots.mcuboot" if cfg.pop("slot", None) == "mcuboot" else "fota.slots.esp32slot"
    )
    return __import__(name, None, None, ("Board",)).Board(cfg)


def run(path=None, root=None):
    """-> the checked config, with "chunk" and "version" resolved and "root", "board" (the
    adapter's module) and the profile's chip, swap and write_align added. Raises OTAError
    (reason config) naming what is wrong. path: root + "ota.json" by default."""
    from fota.app import config

    root = home(root)
    cfg = config.load(path or root + "ota.json")
    prof = profile(root + "board.json")
    for key in ("chip", "slot", "swap", "write_align", "chunk"):
        if key in prof:
            cfg.setdefault(key, prof[key])
    cfg.setdefault("chunk", 4096)
    cfg["root"] = root
    made = board(cfg)  # an adapter refuses settings its board cannot have
    if not cfg.get("version"):
        try:
            cfg["version"] = made.running_version()
        except OTAError as exc:
            raise OTAError(
                CONFIG,
                "cannot read the running version (%s): set version in ota.json" % exc.message,
            ) from None
    return cfg
