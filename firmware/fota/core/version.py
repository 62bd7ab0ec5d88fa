# Version strings: compare "1.2.10" > "1.2.9" the way firmware versions are meant.
#
# A version is split at dots and dashes; numeric parts compare as numbers, others as text, and a
# numeric part ranks above a text one ("1.0.0" > "1.0.0-rc1" once the release part runs out).
# A leading "v" is ignored. Allocates; used once per check, never in a loop.


def _parts(version):
    v = version.strip()
    if v[:1] in ("v", "V"):
        v = v[1:]
    out = []
    for dotted in v.split("-"):
        for part in dotted.split("."):
            out.append(int(part) if part.isdigit() else part)
    return out


def compare(a, b):
    """-1, 0 or 1 as version a is older than, equal to or newer than b."""
    pa = _parts(a)
    pb = _parts(b)
    for i in range(max(len(pa), len(pb))):
        if i >= len(pa):  # "1.0" < "1.0.1", but "1.0" > "1.0-rc1"
            return 1 if isinstance(pb[i], str) else -1
        if i >= len(pb):
            return -1 if isinstance(pa[i], str) else 1
        x, y = pa[i], pb[i]
        if x == y:
            continue
        if isinstance(x, int) and isinstance(y, int):
            return 1 if x > y else -1
        if isinstance(x, int):
            return 1
        if isinstance(y, int):
            return -1
        return 1 if x > y else -1
    return 0
