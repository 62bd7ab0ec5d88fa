# tools/emu/ranges.py: the two Range dialects the emulators serve.
#
# onenet(): OneNET's own clamping rules (its OTA docs' "下载资源" page), where nothing is ever
# unsatisfiable; rfc7233(): the standard rules, for the file URLs Sagoo hands out.
# Both return None for "the whole file, 200" or (start, end) with end inclusive.

import re

UNSATISFIABLE = "unsatisfiable"

_ONENET = re.compile(r"(?:bytes\s*=\s*)?([0-9]*)\s*-\s*([0-9]*)", re.IGNORECASE)
_RFC = re.compile(r"bytes=([0-9]*)-([0-9]*)")


def onenet(header, size):
    """OneNET's Range: `bytes=start-`, `bytes=start-end`, `bytes=-n`, and the bare `start-end`
    of its "下载资源" API page."""
    if header is None:
        return None
    m = _ONENET.fullmatch(header.strip())
    if m is None or size == 0:
        return None  # missing or malformed: the whole file
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:
        n = int(last)
        if n == 0:
            return None  # our choice: "the last 0 bytes" is read as no range at all
        if n > size:
            return 0, size - 1  # OneNET: -n with n > len gets the whole file
        return size - n, size - 1
    start = int(first)  # int() reads OneNET's `01-02` as 1-2
    if not last:
        if start >= size:
            start = 0  # OneNET rule 1: start >= len means start = 0
        return start, size - 1
    end = int(last)
    if end >= size:
        end = size - 1  # OneNET rule 2: end >= len means end = len - 1
    if start > end:
        start = 0  # OneNET rule 2: start > end means start = 0
    return start, end


def rfc7233(header, size):
    """Standard single byte ranges; anything else (bare, multiple, inverted) is ignored: 200."""
    if header is None:
        return None
    m = _RFC.fullmatch(header.strip())
    if m is None or not any(m.groups()):
        return None
    first, last = m.groups()
    if not first:
        n = int(last)
        if n == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range is ignored (RFC 7233 2.1)
    if start >= size:
        return UNSATISFIABLE
    return start, min(int(last), size - 1) if last else size - 1
