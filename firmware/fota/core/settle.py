# After a reboot, the update that was in flight: the new image runs (health check, confirm,
# report success), the bootloader went back to the old one (report the rollback, give the offer
# up), or a download was cut short (the next check resumes it). A module of its own because it
# runs once per boot, never beside a download.

from fota.core import errors
from fota.core.version import compare


def after_boot(updater, running_version, confirm, healthy=None):
    """Settle an update that was in flight before the reboot. updater: the Updater.

    running_version: the version of the image that runs now; confirm(): cancels the
    bootloader's rollback (esp32 mark_app_valid_cancel_rollback); healthy(): the health
    check before confirming (network up, cloud reachable), True when it passed.
    -> "confirmed", "rolled_back", "unhealthy" or None (nothing was in flight)."""
    state = updater.store.load()
    pending = state.get("pending")
    if not pending:
        updater.flush()
        return None
    job, target = pending["job"], pending.get("target")
    if target is not None and compare(running_version, target) == 0:
        # Activated (also when the power went between set_boot and saving that fact).
        if healthy is not None and not healthy():
            # Not confirmed: the next reset rolls back, and that boot reports the failure.
            updater._event("unhealthy", {"version": running_version})
            return "unhealthy"
        confirm()
        updater._owe("succeeded", job, running_version, send=False, pending=None)
        updater._event("confirmed", {"version": running_version})
        updater.flush()
        return "confirmed"
    if pending.get("activated"):
        error = errors.OTAError(
            errors.ROLLBACK,
            "the bootloader rolled back to %s: %s did not confirm" % (running_version, target),
        )
        updater._owe("failed", job, error=error, stage="upgrade", send=False, pending=None,
                     skip=pending.get("key"))  # fmt: skip
        updater._event("rolled_back", {"version": running_version, "target": target})
        updater.flush()
        return "rolled_back"
    # A download was cut (power cut, crash): the next check resumes it from the journal.
    updater.flush()
    return None
