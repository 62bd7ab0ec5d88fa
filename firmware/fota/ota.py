# The interactive API, for a REPL or an mpremote session:
#
#   >>> from fota import ota
#   >>> ota.status()                     # versions, slots, what is in flight or owed
#   >>> ota.check()                      # ask the cloud; installs nothing
#   >>> ota.update("https://host/fw.bin", md5="...")   # a manual OTA from any URL, then reset
#   >>> ota.confirm()                    # keep the running image (cancel the rollback)
#   >>> ota.rollback()                   # boot the other slot for good (reset to take effect)
#
# Every function prints its events and returns a plain value; errors are printed as one line
# ({"event": "error", ...}) and the function returns None, so a session never ends in a traceback.

from fota.app import events
from fota.core import errors


def _cycle(path=None, root=None):
    import time

    from fota.app import boot
    from fota.app.cycle import Cycle

    return Cycle(boot.run(path, root), time)


def _board(root):
    # -> the board adapter the profile names, and the agent's root folder
    from fota.app import boot

    root = boot.home(root)
    return boot.board(boot.profile(root + "board.json")), root


def _guard(fn):
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except errors.OTAError as exc:
            events.emit("error", {"reason": exc.reason, "error": exc.message})
        except Exception as exc:  # a session never ends in a traceback
            events.emit("error", {"reason": "internal", "error": repr(exc)})
        return None

    return run


def _arg(name, value, kind, required=False):
    # a REPL argument of the wrong type is one error event, not a TypeError deep inside
    if value is None and not required:
        return value
    if not isinstance(value, kind) or isinstance(value, bool):
        raise errors.OTAError(
            errors.CONFIG, "%s: expected a %s, got %r" % (name, kind.__name__, value)
        )
    return value


def _settings(path, root):
    """allow_http, ca and window from /ota.json when it is there and valid, else the defaults."""
    from fota.app import boot

    try:
        cfg = boot.run(path, root)
    except errors.OTAError:
        return False, None, 65536
    return cfg["allow_http"], cfg.get("ca"), cfg["window"]


@_guard
def status(root=None):
    from fota.core.store import Store

    board, root = _board(root)
    state = Store(root + "fota.state").load()
    info = {
        "running": board.running_label(),
        "version": board.running_version(),
        "next_boot": board.next_boot(),
        "pending": state.get("pending"),
        "owed": state.get("outcome"),
        "given_up": state.get("skip"),
    }
    events.emit("status", info)
    return info


@_guard
def check(path=None, root=None):
    cycle = _cycle(path, root)
    try:
        offer = cycle.cloud.check(cycle.cfg["version"])
    finally:
        cycle.client.close()
    if offer is None:
        events.emit("no_update", {})
        return None
    info = {"version": offer.version, "size": offer.size, "md5": offer.md5,
            "sha256": offer.sha256, "url": offer.url}  # fmt: skip
    events.emit("offer", info)
    return info


@_guard
def update(url, md5=None, sha256=None, size=None, version=None, ca=None, allow_http=None,
           chunk=4096, root=None, path=None):  # fmt: skip
    """Download url into the other slot, verify it (md5 and/or sha256 required) and make it the
    boot slot. Reset to run it; the next boot confirms it like a cloud update. -> the version.

    allow_http and ca (a DER file) follow /ota.json unless given here."""
    _arg("url", url, str, True)
    for name, value in (("md5", md5), ("sha256", sha256), ("version", version), ("ca", ca)):
        _arg(name, value, str)
    _arg("size", size, int)
    _arg("chunk", chunk, int, True)
    if not md5 and not sha256:
        raise errors.OTAError(errors.CONFIG, "give md5= or sha256= to verify the image with")
    board, root = _board(root)
    known_http, known_ca, window = _settings(path, root)
    if allow_http is None:
        allow_http = known_http
    if ca is None:
        ca = known_ca
    from fota.core.download import Downloader
    from fota.core.journal import Journal
    from fota.core.offer import Offer, probe_size
    from fota.core.store import Store
    from fota.core.update import Updater
    from fota.transport.http import Client

    cafile = None
    if ca:
        try:
            with open(ca, "rb") as f:
                cafile = f.read()
        except OSError:
            raise errors.OTAError(errors.CONFIG, "ca: cannot read %s" % ca) from None
    client = Client(ca=cafile, allow_http=allow_http)
    try:
        if size is None:
            size = probe_size(client, url)
        offer = Offer(url, size, md5=md5, sha256=sha256, version=version)
        import time

        dl = Downloader(client, board.slot(), Journal(root + "fota.journal"), time, chunk=chunk,
                        window=window, on_event=events.emit)  # fmt: skip
        updater = Updater(None, dl, Store(root + "fota.state"), events.emit, allow_downgrade=True)
        result = updater.install(offer, board.running_version())
    finally:
        client.close()
    if result != "activated":
        return None
    return updater.store.load()["pending"]["target"]


@_guard
def confirm(root=None):
    board = _board(root)[0]
    board.confirm()
    events.emit("confirmed", {"version": board.running_version()})
    return True


@_guard
def rollback(root=None):
    """Boot the other slot's image at the next reset, for good: like an update, the agent
    confirms it at that boot (after its health check); without the agent, ota.confirm() after
    the reset keeps it. -> the version that will run."""
    from fota.core.store import Store

    board, root = _board(root)
    running = board.running_version()
    target = board.rollback()
    # the boot into it settles this as an update in flight: the image is confirmed there
    pending = {"job": None, "target": target, "from": running, "key": "rollback", "activated": True}
    Store(root + "fota.state").update(pending=pending)
    events.emit("rollback", {"next_boot": board.next_boot(), "version": target,
                             "hint": "machine.reset() to boot it"})  # fmt: skip
    return target
