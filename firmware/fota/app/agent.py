# The device app: config -> board, transport, cloud, engine, update cycle; then, at every boot,
# settle the update that was in flight, and poll the cloud forever.
#
# Poll loop: one check per poll_s (with +-10% jitter, so a fleet does not hit the cloud in step);
# after a failure the wait grows 30 s, 60 s, 120 s ... up to poll_s. Before a full wait it emits
# "idle" (the virtual board stops there). After an activation the board resets into the new
# image; that boot confirms it (health check first) and reports success, or reports the
# bootloader's rollback.

from fota.app import events
from fota.core import errors

STATE = "fota.state"
JOURNAL = "fota.core.journal"
MCU_IMAGE = "mcu.bin"  # where an attached MCU's image is kept for the application's hook
_BACKOFF_S = 30


def make_cloud(cfg, client, clock, on_event=None):
    from fota.app import config

    name = cfg["cloud"]
    section = config.section(cfg)
    if name == "onenet":
        from fota.clouds.onenet import OneNet as Cloud
    elif name == "onenet-fuse":
        from fota.clouds.onenet_fuse import OneNetFuse as Cloud
    elif name == "sagoo":
        from fota.clouds.sagoo import Sagoo as Cloud
    elif name == "mxchip":
        from fota.clouds.mxchip import Mxchip as Cloud
    elif name == "aliyun":
        from fota.clouds.aliyun import Aliyun as Cloud
    else:
        raise errors.OTAError(
            errors.CONFIG, "ota.json: cloud %s is not in this build of the agent" % name
        )
    return Cloud(client, cfg["server"], section, clock, on_event)


def _read_ca(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        raise errors.OTAError(errors.CONFIG, "ota.json: ca: cannot read %s" % path) from None


class App:
    def __init__(self, cfg, board, clock=None, root="/", emit=events.emit):
        if clock is None:
            import time as clock
        from fota.core.store import Store
        from fota.transport.http import Client

        self.cfg = cfg
        self.board = board
        self.clock = clock
        self.root = root
        self.emit = emit
        ca = _read_ca(cfg["ca"]) if cfg.get("ca") else None
        self.client = Client(ca=ca, allow_http=cfg["allow_http"])
        self.cloud = make_cloud(cfg, self.client, clock, emit)
        self.store = Store(root + STATE)
        self._job = None

    # -- pieces

    def version(self):
        """The running version: the config's override, else the running image's descriptor."""
        if self.cfg.get("version"):
            return self.cfg["version"]
        try:
            return self.board.running_version()
        except errors.OTAError as exc:
            raise errors.OTAError(
                errors.CONFIG,
                "cannot read the running version (%s): set version in ota.json" % exc.message,
            ) from None

    def _engine_event(self, kind, info):
        if kind == "progress" and self._job is not None:
            try:
                self.cloud.progress(self._job, info["percent"])
            except errors.OTAError as exc:  # a lost progress report must not stop the download
                self.emit("report_failed", {"result": "progress", "error": exc.message})
        if kind != "verified":  # the update cycle announces that itself
            self.emit(kind, info)

    def downloader(self, offer=None):
        from fota.core.download import Downloader
        from fota.core.journal import Journal

        cfg = self.cfg
        if offer is not None and not offer.reboot:
            from fota.slots.fileslot import FileSlot

            slot = FileSlot(self.root + MCU_IMAGE, cfg["mcu_max"], offer.version)
        else:
            slot = self.board.slot()
        return Downloader(
            self.client,
            slot,
            Journal(self.root + JOURNAL),
            self.clock,
            chunk=cfg.get("chunk") or self.board.profile.get("chunk", 4096),
            window=cfg["window"],
            bare_range=getattr(self.cloud, "bare_range", False),
            retries=cfg["retries"],
            journal_blocks=cfg["journal_blocks"],
            progress_step=cfg["progress_step"],
            readback=cfg["readback"],
            on_event=self._engine_event,
        )

    def updater(self):
        from fota.core.update import Updater

        return Updater(
            self.cloud,
            self.downloader,
            self.store,
            self._update_event,
            allow_downgrade=self.cfg["allow_downgrade"],
        )

    def _update_event(self, kind, info):
        if kind == "start":
            self._job = info.get("job")
        self.emit(kind, info)

    def healthy(self):
        """The new image's health check: the network is up and the cloud answers a check."""
        if not self.board.network_up(self.cfg.get("wifi"), self.clock):
            self.emit("health", {"ok": False, "error": "network down"})
            return False
        try:
            self.cloud.check(self.version())
        except errors.OTAError as exc:
            self.emit("health", {"ok": False, "error": exc.message})
            return False
        self.emit("health", {"ok": True})
        return True

    # -- the lifecycle

    def settle(self):
        """At boot: confirm or report what happened to the update in flight."""
        version = self.version()
        health = self.healthy if self.cfg["health_check"] else None
        result = self.updater().after_boot(version, self.board.confirm, health)
        if result == "unhealthy":
            # Not confirmed: the reset makes the bootloader go back to the previous image, and
            # that boot reports the failure.
            self.emit("reset", {"reason": "unhealthy"})
            self.client.close()
            self.board.reset()
        return result

    def poll(self):
        """One check (and install). Resets the board after an activation."""
        if not self.board.network_up(self.cfg.get("wifi"), self.clock):
            raise errors.OTAError(
                errors.DOWNLOAD, "network down: cannot join the access point", retryable=True
            )
        result = self.updater().run(self.version())
        if result == "activated":
            self.emit("reset", {"reason": "activate"})
            self.client.close()
            self.board.reset()
        return result

    def _jittered(self, seconds):
        import os

        spread = seconds // 10
        if spread <= 0:
            return seconds
        r = int.from_bytes(os.urandom(2), "big") % (2 * spread + 1)
        return seconds - spread + r

    def _guarded(self, stage, action):
        """-> action()'s result, or "failed" after an "error" event for its OTAError.

        A MemoryError gives "no_memory" and does not end the agent: the heap may be short only
        this time (the application's own use, fragmentation), so the garbage is collected and
        the loop tries again after a backoff."""
        try:
            return action()
        except errors.OTAError as exc:
            self.emit("error", {"stage": stage, "reason": exc.reason, "error": exc.message})
            return "failed"
        except MemoryError:
            import gc

            gc.collect()
            self.emit(
                "error", {"stage": stage, "reason": errors.NO_MEMORY, "error": "out of memory"}
            )
            return errors.NO_MEMORY

    def _inform(self):
        if getattr(self.cloud, "inform_at_boot", False):  # Aliyun: the version at every boot
            self.cloud.report_version(self.version())

    def run_forever(self):
        self.emit("agent", {"version": self.version(), "cloud": self.cfg["cloud"]})
        # Settling confirms (or reports the rollback of) the update in flight. Nothing is polled
        # before it has run; when memory ran out in it, it runs again after the backoff.
        settled = self._guarded("settle", self.settle) != errors.NO_MEMORY
        self._guarded("inform", self._inform)
        failures = 0
        poll_s = self.cfg["poll_s"]
        while True:
            result = self._guarded("check", self.poll) if settled else errors.NO_MEMORY
            self.client.close()  # no idle connection held through the wait
            if result in ("failed", errors.NO_MEMORY):
                failures += 1
                delay = min(_BACKOFF_S << min(failures - 1, 16), poll_s)
                self.emit("backoff", {"sleep_s": delay, "failures": failures})
            else:
                failures = 0
                delay = self._jittered(poll_s)
                self.emit("idle", {"sleep_s": delay})
            self.clock.sleep_ms(delay * 1000)
            if not settled:
                settled = self._guarded("settle", self.settle) != errors.NO_MEMORY


def main(path="/ota.json", root="/"):
    """boot-time entry point (main.py): never raises, so the board keeps running its app."""
    from fota.app import config
    from fota.slots.esp32board import Board, profile

    try:
        cfg = config.load(path)
        board = Board(profile(root + "board.json"))
        App(cfg, board, root=root).run_forever()
    except errors.OTAError as exc:
        events.emit("error", {"stage": "start", "reason": exc.reason, "error": exc.message})
    except MemoryError:
        events.emit("error", {"stage": "start", "reason": errors.NO_MEMORY, "error": "no memory"})
    except Exception as exc:  # a bug in the agent must not take the board's REPL with it
        events.emit("error", {"stage": "start", "reason": "internal", "error": repr(exc)})
