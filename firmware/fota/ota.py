# The interactive API, for a REPL or an mpremote session:
#
#   >>> from fota import ota
#   >>> ota.status()                     # versions, slots, what is in flight or owed
#   >>> ota.check()                      # ask the cloud; installs nothing
#   >>> ota.update("https://host/fw.bin", md5="...")   # a manual OTA from any URL, then reset
#   >>> ota.confirm()                    # keep the running image (cancel the rollback)
#   >>> ota.rollback()                   # boot the other slot (reset to take effect)
#
# Every function prints its events and returns a plain value; errors are printed as one line
# ({"event": "error", ...}) and the function returns None, so a session never ends in a traceback.

from fota.app import events
from fota.core import errors


def _cycle(path="/ota.json", root="/"):
    import time

    from fota.app import boot
    from fota.app.cycle import Cycle

    return Cycle(boot.run(path, root), time)


def _board(root="/"):
    from fota.app.boot import profile
    from fota.slots.esp32slot import Board

    return Board(profile(root + "board.json"))


def _guard(fn):
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except errors.OTAError as exc:
            events.emit("error", {"reason": exc.reason, "error": exc.message})
            return None

    return run


@_guard
def status(root="/"):
    import esp32

    from fota.core.store import Store

    board = _board(root)
    state = Store(root + "fota.state").load()
    info = {
        "running": board.running_label(),
        "version": board.running_version(),
        "next_boot": esp32.Partition(esp32.Partition.BOOT).info()[4],
        "pending": state.get("pending"),
        "owed": state.get("outcome"),
        "given_up": state.get("skip"),
    }
    events.emit("status", info)
    return info


@_guard
def check(path="/ota.json", root="/"):
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
def update(url, md5=None, sha256=None, size=None, version=None, ca=None, allow_http=False,
           chunk=4096, root="/"):  # fmt: skip
    """Download url into the other slot, verify it (md5 and/or sha256 required) and make it the
    boot slot. Reset to run it; the next boot confirms it like a cloud update. -> the version."""
    from fota.core.download import Downloader
    from fota.core.journal import Journal
    from fota.core.offer import Offer, probe_size
    from fota.core.store import Store
    from fota.core.update import Updater
    from fota.transport.http import Client

    board = _board(root)
    cafile = None
    if ca:
        with open(ca, "rb") as f:
            cafile = f.read()
    client = Client(ca=cafile, allow_http=allow_http)
    if size is None:
        size = probe_size(client, url)
    offer = Offer(url, size, md5=md5, sha256=sha256, version=version)
    import time

    dl = Downloader(client, board.slot(), Journal(root + "fota.core.journal"), time, chunk=chunk,
                    on_event=events.emit)  # fmt: skip
    updater = Updater(None, dl, Store(root + "fota.state"), events.emit, allow_downgrade=True)
    result = updater.install(offer, board.running_version())
    client.close()
    if result != "activated":
        return None
    return updater.store.load()["pending"]["target"]


@_guard
def confirm(root="/"):
    _board(root).confirm()
    events.emit("confirmed", {"version": _board(root).running_version()})
    return True


@_guard
def rollback(root="/"):
    board = _board(root)
    board.rollback()
    events.emit("rollback", {"next_boot": "other slot", "hint": "machine.reset() to boot it"})
    return True
