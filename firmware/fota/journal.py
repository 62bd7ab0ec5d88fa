# The resume journal: one small JSON file saying how much of which offer is safely in flash.
#
# Written to a temporary name and renamed over the old one, so a power cut leaves either the old
# or the new journal, never half of one. It holds a SHA-256 of the offer's key, not the key: a
# download URL may carry a token. Written every few blocks by the engine, never per chunk.

import hashlib
import json
import os

from fota import errors


def _fingerprint(key):
    h = hashlib.sha256(key.encode())
    return h.digest().hex()


class Journal:
    def __init__(self, path):
        self.path = path
        self._tmp = path + ".tmp"

    def load(self, key, size):
        """The committed offset for this offer, or 0 (and a fresh start) for anything else."""
        try:
            with open(self.path) as f:
                state = json.load(f)
            if state.get("id") == _fingerprint(key) and state.get("size") == size:
                offset = state.get("offset")
                if isinstance(offset, int) and 0 <= offset <= size:
                    return offset
        except (OSError, ValueError, AttributeError):
            pass  # no journal, or one we cannot read: start over, which is always safe
        return 0

    def save(self, key, size, offset):
        state = {"id": _fingerprint(key), "size": size, "offset": offset}
        try:
            with open(self._tmp, "w") as f:
                json.dump(state, f)
            try:
                os.rename(self._tmp, self.path)
            except OSError:  # file systems whose rename does not replace
                os.remove(self.path)
                os.rename(self._tmp, self.path)
        except OSError as exc:
            raise errors.FlashError("cannot write the journal %s: %s" % (self.path, exc))

    def clear(self):
        for path in (self.path, self._tmp):
            try:
                os.remove(path)
            except OSError:
                pass
