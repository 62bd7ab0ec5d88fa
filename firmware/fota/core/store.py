# The agent's state across reboots: one small JSON file, written to a temporary name and renamed,
# so a power cut leaves either the old or the new state, never half of one.

import json
import os

from fota.core import errors


class Store:
    def __init__(self, path):
        self.path = path

    def load(self):
        """The saved dict, or {} when there is none or it is unreadable (a new board)."""
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, data):
        """Write data; OTAError (flash) when the file system refuses (full, read-only)."""
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.rename(tmp, self.path)
        except OSError as exc:
            raise errors.OTAError(
                errors.FLASH, "cannot write the state file %s: %s" % (self.path, exc)
            ) from None

    def update(self, **changes):
        data = self.load()
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self.save(data)
        return data
