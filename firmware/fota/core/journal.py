# The resume journal: one small file saying how much of which offer is safely in flash.
#
# Layout: a JSON head line {"id": SHA-256 of the offer's key, "size": N, "offset": O} and then
# fixed 22-byte commit records "OOOOOOOOOO CCCCCCCCCC\n" (the offset and, as a check, the offset
# XOR 0x3FFFFFFF, both as 10 decimal digits). The head holds a fingerprint, never the key: a
# download URL may carry a token.
#
# Crash safety: the head (with the offset of that moment) is written to a temporary name and
# renamed over the old file, so a power cut leaves the old journal or the new one; right after
# clear() there is no old one to keep, and the head is written in place (a power cut then leaves
# no journal or one that does not parse: both mean start over, as without it). Commits in
# between are appended: one open/write/close instead of a create and a rename, which is what a
# commit cost (about 0.15 ms on the host, several flash writes on a device). A power cut during an
# append leaves a short or garbled last record; load() takes the last record that is whole and
# passes its check, else the head's offset, so a torn append loses at most that commit. Every
# 64 records the head is rewritten (with the offset) so the file stays under 1.5 KB.
#
# Written every few blocks by the engine, never per chunk; an append formats its record in place
# in a buffer made once (it allocates only the file object).

import json
import os

from micropython import const

from fota.core import errors

_REC = const(22)  # bytes of a commit record
_CHECK = const(0x3FFFFFFF)
_COMPACT = const(64)  # records before the head is rewritten
_HEAD_MAX = const(256)


def _fingerprint(key):
    import hashlib

    return hashlib.sha256(key.encode()).digest().hex()


def _put(buf, at, value):
    # value (< 10**10) as 10 decimal digits in buf[at:at + 10]
    i = at + 10
    while i > at:
        i -= 1
        buf[i] = 48 + value % 10
        value //= 10


def _get(buf, at):
    # the 10 decimal digits at buf[at:at + 10] as an int, or -1
    value = 0
    for i in range(at, at + 10):
        c = buf[i] - 48
        if c < 0 or c > 9:
            return -1
        value = value * 10 + c
    return value


class Journal:
    def __init__(self, path):
        self.path = path
        self._tmp = path + ".tmp"
        self._rec = bytearray(_REC)
        # the key and size of the head on file, when records may be appended, and the records
        # after it (size and count: plain names, which every port has interned already)
        self._key = None
        self.size = 0
        self.count = 0
        self._gone = False  # clear() removed the file: the next head may be written in place

    def load(self, key, size):
        """The committed offset for this offer, or 0 (and a fresh start) for anything else."""
        self._key = None
        try:
            with open(self.path, "rb") as f:
                head = f.readline(_HEAD_MAX)
                state = json.loads(head)
                if state.get("id") != _fingerprint(key) or state.get("size") != size:
                    return 0
                offset = state.get("offset")
                if not isinstance(offset, int) or not 0 <= offset <= size:
                    return 0
                base = len(head)
                tail = f.seek(0, 2) - base
                count = tail // _REC
                rec = self._rec
                i = count
                while i > 0:  # the last whole record that passes its check
                    i -= 1
                    f.seek(base + i * _REC)
                    if f.readinto(rec) == _REC and rec[10] == 32 and rec[21] == 10:
                        value = _get(rec, 0)
                        if 0 <= value <= size and _get(rec, 11) == value ^ _CHECK:
                            offset = value
                            break
            self._key, self.size = key, size
            # a torn last record: the next commit rewrites the head instead of appending after it
            self.count = count if tail % _REC == 0 else _COMPACT
            return offset
        except (OSError, ValueError, AttributeError, TypeError):
            pass  # no journal, or one we cannot read: start over, which is always safe
        return 0

    def save(self, key, size, offset):
        """Commit `offset` bytes of the offer (key, size). Raises FlashError."""
        try:
            if key == self._key and size == self.size and self.count < _COMPACT:
                rec = self._rec
                _put(rec, 0, offset)
                rec[10] = 32
                _put(rec, 11, offset ^ _CHECK)
                rec[21] = 10
                with open(self.path, "ab") as f:
                    f.write(rec)
                self.count += 1
                return
            fresh = self._key is None and self._gone  # no journal on file to keep safe
            self._key = None
            head = json.dumps({"id": _fingerprint(key), "size": size, "offset": offset})
            with open(self.path if fresh else self._tmp, "w") as f:
                f.write(head)
                f.write("\n")
            if not fresh:
                try:
                    os.rename(self._tmp, self.path)
                except OSError:  # file systems whose rename does not replace
                    os.remove(self.path)
                    os.rename(self._tmp, self.path)
            self._key, self.size, self.count, self._gone = key, size, 0, False
        except OSError as exc:
            raise errors.OTAError(
                errors.FLASH, "cannot write the journal %s: %s" % (self.path, exc)
            )

    def clear(self):
        """Remove the journal (a finished download, or a fresh start)."""
        self._key = None
        for path in (self.path, self._tmp):
            try:
                os.remove(path)
            except OSError:
                pass
        self._gone = True
