# The update cycle: check -> policy -> start -> download, verify, activate -> report, and after
# the reboot: confirm and report success, or report the bootloader's rollback.
#
# Core: gets the cloud (fota.clouds.*), the engine (fota.core.download.Downloader) and a Store
# passed
# in; imports no hardware and no cloud module. State that must survive the reboot lives in the
# store:
#   "pending"  {"job", "target", "from", "key", "activated"}: an update in flight
#   "outcome"  {"result": "succeeded"|"failed", "job", "version", "code"...}: a report owed to the
#              cloud; kept until the cloud has taken it, so no outcome is lost or sent twice
#   "skip"     the key of a task the cloud refused to go on with (finished, cancelled, expired)
#              or whose offer is wrong (a digest, a version, a size, a malformed answer): never
#              retried, until the cloud offers another one. Any other failure (the network, a
#              certificate, the flash, the memory) is tried again at the next poll
# Events go to on_event(kind, info): offer, no_update, skipped, start, progress, retry, resume,
# verified, activated, failed, confirmed, rolled_back, reported, report_failed.

from micropython import const

from fota.core import errors
from fota.core.version import compare

# the reasons for which an offer is given up for good (see Updater._fail)
_GIVE_UP = const(("verify", "version", "no_space", "protocol"))


class Updater:
    """downloader: a Downloader, or a function downloader(offer) that makes one when an offer
    comes (so its buffer is allocated only for a download, with the slot the offer needs)."""

    def __init__(self, cloud, downloader, store, on_event=None, allow_downgrade=False, forget=None):
        self.forget = forget  # forget(): drops the engine's code once its part is done
        self.cloud = cloud
        self.downloader = downloader
        self.store = store
        self.on_event = on_event
        self.allow_downgrade = allow_downgrade

    def _event(self, kind, info=None):
        if self.on_event:
            self.on_event(kind, info or {})

    # -- reports the cloud must get exactly once

    def _owe(self, result, job, version=None, error=None, stage=None, send=True, **changes):
        """Record the outcome the cloud is owed, with the other state `changes` in the same
        write (a power cut between two writes would drop the update in flight and lose its
        report), then send it unless send=False (the caller flushes)."""
        if job is None:  # a manual update (fota.ota.update): no cloud task to report to
            if changes:
                self.store.update(**changes)
            return True
        outcome = {"result": result, "job": job, "version": version}
        if error is not None:
            outcome["reason"] = error.reason
            outcome["message"] = error.message
            outcome["stage"] = stage
        self.store.update(outcome=outcome, **changes)
        return self.flush() if send else False

    def flush(self):
        """Send the outcome the cloud is owed, if any. -> True when nothing is owed any more."""
        outcome = self.store.load().get("outcome")
        if not outcome:
            return True
        job = outcome["job"]
        try:
            if outcome["result"] == "succeeded":
                self.cloud.succeeded(job, outcome["version"])
            else:
                error = errors.OTAError(outcome["reason"], outcome["message"])
                self.cloud.failed(job, error, outcome["stage"])
        except errors.OTAError as exc:
            self._event("report_failed", {"result": outcome["result"], "error": exc.message})
            return False
        self.store.update(outcome=None)
        self._event("reported", {"result": outcome["result"]})
        return True

    # -- one poll

    def run(self, version, turn=0):
        """Check and, when there is an offer, install it. -> "none", "skipped", "activated"
        (the caller resets the board), "installed" (no reboot needed), "failed", or
        "downloading" (see install's turn). Raises OTAError for a failed check."""
        if not self.flush():
            return "failed"
        offer = self.cloud.check(version)
        if offer is None:
            self._event("no_update", {"version": version})
            return "none"
        info = {"version": offer.version, "size": offer.size, "job": offer.job}
        self._event("offer", info)
        state = self.store.load()
        if state.get("skip") == offer.key():
            self._event("skipped", info)
            return "skipped"
        try:
            offer.check()  # a field of the wrong type is the cloud's failure, reported
        except errors.OTAError as exc:
            return self._fail(offer, exc, "download")
        if offer.version is not None:
            order = compare(offer.version, version)
            if order == 0:
                # The board already runs the target: the cloud missed the success report.
                self._owe("succeeded", offer.job, version)
                return "none"
            if order < 0 and not self.allow_downgrade:
                error = errors.OTAError(
                    errors.VERSION, "refusing a downgrade from %s to %s" % (version, offer.version)
                )
                return self._fail(offer, error, "download")
        try:
            self.cloud.start(offer)
        except errors.OTAError as exc:
            if exc.reason != errors.REJECTED:
                raise
            self.store.update(skip=offer.key(), pending=None)
            self._event("skipped", {"version": offer.version, "error": exc.message})
            return "skipped"
        return self.install(offer, version, turn)

    def install(self, offer, version, turn=0):
        """Download, verify and activate offer (already checked and started). -> "activated"
        or "failed" (reported to the cloud). Also the path of a manual update (job None).

        turn: at most this many download requests now (see Downloader.fetch), then ->
        "downloading" with the download paused, self.delay_ms the wait before going on with
        install(None, None, turn); the caller runs its own work in between. 0: to the end."""
        fresh = offer
        if offer is not None:
            info = {"version": offer.version, "size": offer.size, "job": offer.job}
            pending = {
                "job": offer.job, "target": offer.version, "from": version, "key": offer.key()
            }  # fmt: skip
            self.store.update(pending=pending)
            self._event("start", info)
            self.job = [offer, pending, self.downloader]  # what the next turns go on with
        job = self.job
        offer, pending, dl = job
        try:
            if not hasattr(dl, "run"):
                dl = job[2] = dl(offer)
            if offer.size is None:  # the cloud gives none (Sagoo, MXCHIP): ask the server
                dl.probe(offer)
            if dl.fetch(fresh, turn) is None:
                self.delay_ms = dl.delay_ms
                return "downloading"
            args = dl.finishing()
            resumed = dl.resumed_from
            dl = job[2] = None  # the engine and its buffer go before the image check
            if self.forget is not None:
                self.forget()  # the download's code leaves before the image checker comes in
            from fota.core.finish import finish

            version = finish(*args[:-1])  # without the engine's listener: the update
            # announces "verified" itself, once
        except errors.OTAError as exc:
            dl = job[2] = None
            return self._fail(offer, exc, "download")
        except MemoryError:  # making the downloader (its buffer) or probing the size
            import gc

            dl = job[2] = None
            gc.collect()  # what the attempt held is garbage now: room for the report
            error = errors.OTAError(errors.NO_MEMORY, "out of memory for the download")
            return self._fail(offer, error, "download")
        self._event("verified", {"version": version, "size": offer.size})
        if not offer.reboot:  # installed (e.g. handed to an attached MCU): done, no reboot
            self._owe("succeeded", offer.job, version, send=False, pending=None)
            self._event("installed", {"version": version, "module": offer.module})
            self.flush()
            return "installed"
        pending["activated"] = True
        pending["target"] = version
        self.store.update(pending=pending)
        if offer.job is not None:
            try:
                self.cloud.downloaded(offer.job)
            except errors.OTAError as exc:  # the slot is switched: the outcome follows the boot
                self._event("report_failed", {"result": "downloaded", "error": exc.message})
        self._event("activated", {"version": version, "resumed_from": resumed})
        return "activated"

    def _fail(self, offer, error, stage):
        self._event(
            "failed", {"reason": error.reason, "error": error.message, "retryable": error.retryable}
        )
        changes = {"pending": None}  # type: dict
        if error.reason in _GIVE_UP:
            # the offer itself is wrong (a digest, a version, a size, a malformed answer): the
            # same offer would fail the same way. Anything else may heal (a certificate, a
            # server, the flash, the memory, the config after a fix): tried at the next poll.
            changes["skip"] = offer.key()
        self._owe("failed", offer.job, error=error, stage=stage, **changes)
        return "failed"

    # -- after a reboot

    def after_boot(self, running_version, confirm, healthy=None):
        """Settle an update that was in flight before the reboot (fota.core.settle: its code is
        loaded only at boot, never beside a download)."""
        from fota.core.settle import after_boot

        return after_boot(self, running_version, confirm, healthy)
