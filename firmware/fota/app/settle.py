# The settle phase's own part of the cycle (fota.app.cycle.Cycle.settle): the health check of a
# new image, the confirmation or the rollback report, and for Aliyun the running version at
# every boot. Loaded once per boot, never beside a download. cycle: the Cycle.

from fota.core.errors import OTAError


def healthy(cycle):
    """The new image's health check: the network is up, the cloud answers a check, and the
    application's own check (if it registered one) passes."""
    if not cycle.board.network_up(cycle.cfg.get("wifi"), cycle.clock):
        cycle.emit("health", {"ok": False, "error": "network down"})
        return False
    # Asked with the version the cloud knows the board by until the new image is confirmed:
    # for Sagoo a check with the new version is the success report itself.
    pending = cycle.store.load().get("pending") or {}
    try:
        cycle.cloud.check(pending.get("from") or cycle.cfg["version"])
    except OTAError as exc:
        cycle.emit("health", {"ok": False, "error": exc.message})
        return False
    import fota

    app = fota.health  # the application's own (fota.app.agent.health_check)
    if app is not None:
        try:
            error = None if app() else "the application's health check failed"
        except Exception as exc:
            error = "the application's health check raised %r" % (exc,)
        if error:
            cycle.emit("health", {"ok": False, "error": error})
            return False
    cycle.emit("health", {"ok": True})
    return True


def settle(cycle):
    """At boot: confirm or report what happened to the update in flight."""
    health = (lambda: healthy(cycle)) if cycle.cfg["health_check"] else None
    try:
        result = cycle.updater().after_boot(cycle.cfg["version"], cycle.board.confirm, health)
    except OTAError:
        _inform(cycle)  # the running version goes out even when the settlement could not
        raise
    if result == "unhealthy":
        # Not confirmed: the reset makes the bootloader go back to the previous image, and
        # that boot reports the failure.
        cycle.emit("reset", {"reason": "unhealthy"})
        cycle.client.close()
        cycle.board.reset()
    _inform(cycle)
    return result


def _inform(cycle):
    if getattr(cycle.cloud, "inform_at_boot", False):  # Aliyun: the version at every boot
        try:
            cycle.cloud.report_version(cycle.cfg["version"])
        except OTAError as exc:
            cycle.emit("error", {"stage": "inform", "reason": exc.reason, "error": exc.message})
