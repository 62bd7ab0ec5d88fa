# The settle and check phases (fota.app.agent runs them; their code is released after each):
# the parts wired from the checked config (transport, the configured cloud, the board, the
# state store, the update cycle), then one settlement after a reboot or one poll.
#
# settle(): confirm the new image after its health check and report success, or report the
# bootloader's rollback; an unhealthy image is not confirmed and the board resets, so the
# bootloader goes back and that boot reports the failure. Aliyun also hears the running
# version at every boot. poll(): one check, and for an offer download, verify, activate and
# reset into the new image. The connection is closed when the phase ends, whatever happened.

from micropython import const

from fota.app import events
from fota.core.errors import DOWNLOAD, OTAError

_STATE = const("fota.state")
_JOURNAL = const("fota.journal")
_MCU_IMAGE = const("mcu.bin")  # where an attached MCU's image is kept for the application's hook


class Cycle:
    def __init__(self, cfg, clock, emit=events.emit, board=None, cloud=None, buf=None):
        from fota.core.store import Store
        from fota.transport.http import Client

        self.cfg = cfg
        self.clock = clock
        self.emit = emit
        self.root = cfg["root"]
        if board is None:
            from fota.slots.esp32slot import Board

            board = Board(cfg)
        self.board = board
        ca = None
        if cfg.get("ca"):
            try:
                with open(cfg["ca"], "rb") as f:
                    ca = f.read()
            except OSError:
                from fota.core.errors import CONFIG

                raise OTAError(CONFIG, "ota.json: ca: cannot read %s" % cfg["ca"]) from None
        self.client = Client(ca=ca, allow_http=cfg["allow_http"], deadline=cfg["deadline_s"])
        if cloud is None:
            _, module, name, section = cfg["cloud_row"]
            mod = __import__("fota.clouds." + module, None, None, (name,))
            cloud = getattr(mod, name)(self.client, cfg["server"], cfg[section], clock, emit)
        self.cloud = cloud
        self.store = Store(self.root + _STATE)
        self.buf = buf  # the download's block buffer, when the caller made it
        self.job = None

    def _engine_event(self, kind, info):
        if kind == "progress" and self.job is not None:
            try:
                self.cloud.progress(self.job, info["percent"])
            except OTAError as exc:  # a lost progress report must not stop the download
                self.emit("report_failed", {"result": "progress", "error": exc.message})
        self.emit(kind, info)

    def downloader(self, offer=None):
        """The engine for `offer`, made when the offer comes: its buffer exists only then."""
        from fota.core.download import Downloader
        from fota.core.journal import Journal

        cfg = self.cfg
        if offer is not None and not offer.reboot:
            from fota.slots.fileslot import FileSlot

            slot = FileSlot(self.root + _MCU_IMAGE, cfg["mcu_max"], offer.version)
        else:
            slot = self.board.slot()
        return Downloader(
            self.client,
            slot,
            Journal(self.root + _JOURNAL),
            self.clock,
            chunk=cfg["chunk"],
            window=cfg["window"],
            bare_range=getattr(self.cloud, "bare_range", False),
            retries=cfg["retries"],
            journal_blocks=cfg["journal_blocks"],
            progress_step=cfg["progress_step"],
            readback=cfg["readback"],
            on_event=self._engine_event,
            buf=self.buf,
        )

    def updater(self):
        from fota.core.update import Updater

        return Updater(
            self.cloud,
            self.downloader,
            self.store,
            self._update_event,
            allow_downgrade=self.cfg["allow_downgrade"],
            forget=_forget,  # the download's code leaves before the image check loads
        )

    def _update_event(self, kind, info):
        if kind == "start":
            self.job = info.get("job")
        self.emit(kind, info)

    def settle(self):
        """At boot: confirm or report what happened to the update in flight (fota.app.settle:
        its code is loaded only for that)."""
        from fota.app.settle import settle

        return settle(self)

    def poll(self):
        """One check (and install). Resets the board after an activation."""
        if not self.board.network_up(self.cfg.get("wifi"), self.clock):
            raise OTAError(DOWNLOAD, "network down: cannot join the access point")
        result = self.updater().run(self.cfg["version"])
        if result == "activated":
            self.emit("reset", {"reason": "activate"})
            self.client.close()
            self.board.reset()
        return result


def _forget():
    from fota.app.agent import release

    release(("fota.core.download", "fota.core.digest"))


def settle(cfg, clock):
    cycle = Cycle(cfg, clock)
    try:
        return cycle.settle()
    finally:
        cycle.client.close()  # no idle connection held through the wait


# What a check and its download run, loaded up front (see poll()), with the configured cloud.
_CODE = const(
    (
        "fota.core.update",
        "fota.core.offer",
        "fota.core.download",
        "fota.core.journal",
        "fota.core.store",
        "fota.transport.http",
        "fota.transport.redirect",  # a server may redirect any request of the download
        "fota.slots.esp32slot",
    )
)


def poll(cfg, clock):
    # The heap is in one piece when a phase starts. The download's block buffer goes first (later
    # a free run of 4 KB is the hardest thing to find), then every module the check and the
    # download run, one after the other with a collection in between: loading a module leaves the
    # loader's scratch behind as garbage, and the next module's code fills those holes instead
    # of leaving them for the cloud's answers to split into pieces too small for anything. Code
    # loaded after the answers would have to fit between their leftovers, and a heap with
    # kilobytes free in small holes cannot take a module.
    import gc

    buf = bytearray((cfg["chunk"] + 4095) // 4096 * 4096)
    for name in _CODE + ("fota.clouds." + cfg["cloud_row"][1],):
        __import__(name)
        gc.collect()
    cycle = Cycle(cfg, clock, buf=buf)
    try:
        return cycle.poll()
    finally:
        cycle.client.close()
