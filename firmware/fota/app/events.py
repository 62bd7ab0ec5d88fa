# The agent's events: one JSON object per line on the console, {"event": kind, ...}.
#
# On a board they appear on the serial console (and in `mpremote` sessions); the virtual board
# reads them from stdout. Values are checked for secrets before printing: a value under a key
# named like a secret (_SECRETS: the config's keys, tokens, signatures) is printed as "***".

import json

from micropython import const

_SECRETS = const(("key", "sk", "device_secret", "token", "password", "authorization", "sign"))
_listeners = ()


def subscribe(fn):
    """fn(kind, info) is called for every event (e.g. to light an LED); returns fn."""
    global _listeners
    _listeners += (fn,)
    return fn


def unsubscribe(fn):
    global _listeners
    _listeners = tuple(f for f in _listeners if f is not fn)


def redacted(value):
    """A copy safe to print: every value under a secret's key replaced by "***"."""
    if isinstance(value, dict):
        return {k: ("***" if k in _SECRETS else redacted(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v) for v in value]
    return value


def emit(kind, info=None):
    record = {"event": kind}
    if info:
        for k, v in info.items():
            record[k] = v
    print(json.dumps(redacted(record)))
    for fn in _listeners:
        fn(kind, info or {})
