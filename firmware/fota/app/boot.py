# The start phase (fota.app.agent): /ota.json checked once, the board profile read, the running
# version found. Its code is released when it returns: the poll loop keeps only the result, one
# dict of the settings the other phases need.

from fota.core.errors import CONFIG, OTAError


def profile(path="/board.json"):
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


def run(path="/ota.json", root="/"):
    """-> the checked config, with "chunk" and "version" resolved and "chip" and "root" added.
    Raises OTAError (reason config) naming what is wrong."""
    from fota.app import config
    from fota.slots.esp32slot import Board

    cfg = config.load(path)
    prof = profile(root + "board.json")
    cfg["chip"] = prof.get("chip", "esp32")
    cfg["root"] = root
    if not cfg.get("chunk"):
        cfg["chunk"] = prof.get("chunk", 4096)
    if not cfg.get("version"):
        try:
            cfg["version"] = Board(prof).running_version()
        except OTAError as exc:
            raise OTAError(
                CONFIG,
                "cannot read the running version (%s): set version in ota.json" % exc.message,
            ) from None
    return cfg
