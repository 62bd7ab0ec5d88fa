# MXCHIP FOG: the device OTA check and version report of its device API.
#
#   GET /api/v1/ota/device/?product_id=&wifi_version=&mcu_version=   Authorization: token <token>
#     -> {"meta":{"code":0,...},"data":{"need_ota":bool,"files":[{file_url, md5, version,
#         ota_type (0 mcu, 1 wifi), customize}]}}
#   PUT /api/v1/ota/version/ {device_id, wifi_version, mcu_version} after an update.
#
# ota_type 1 ("wifi") is this board's own firmware: it goes to the firmware slot and reboots.
# ota_type 0 ("mcu") is for a microcontroller attached to the board: it goes to a file and the
# application's hook (fota.slots.fileslot), no reboot. When both come at once the MCU file goes
# first (no reboot in between); the firmware follows at the next check. After the MCU file failed,
# the
# firmware goes first instead, so a refused MCU image cannot hold the firmware back forever. The
# files carry no size: a one-byte Range probe gives it before anything is written. The API has
# no failure report: a failure is an event on the device, and the version is simply not reported.
#
# The state file keeps {"version": the MCU's version once an update changed it, "failed": the key
# of the MCU file that failed last}.

from micropython import const

from fota.clouds.base import call, query
from fota.core import errors
from fota.core.offer import Offer

_OK = const(0)
_WIFI = const(1)
_MCU = const(0)


def _key(entry):
    return "mxchip|%s|%s" % (entry.get("file_url"), entry.get("md5"))


class Mxchip:
    name = "mxchip"

    def __init__(self, client, server, cfg, clock, on_event=None, state="/fota.mcu"):
        self.client = client
        self.server = server.rstrip("/")
        self.product_id = cfg["product_id"]
        self.device_id = cfg["device_id"]
        self.headers = {"Authorization": "token " + cfg["token"]}
        self.state = state  # where the MCU's version is kept once an update changed it
        self.default_mcu = cfg.get("mcu_version", "0")
        self.on_event = on_event

    def _load(self):
        import json

        try:
            with open(self.state) as f:
                data = json.load(f)
            if isinstance(data, dict):
                return data
        except (OSError, ValueError):
            pass
        return {}

    def mcu_version(self):
        return self._load().get("version") or self.default_mcu

    def _save(self, **changes):
        import json
        import os

        data = self._load()
        data.update(changes)
        with open(self.state + ".tmp", "w") as f:
            json.dump(data, f)
        os.rename(self.state + ".tmp", self.state)

    def _meta(self, obj, what):
        meta = obj.get("meta")
        code = meta.get("code") if isinstance(meta, dict) else None
        if code == _OK:
            return
        message = meta.get("message", "") if isinstance(meta, dict) else ""
        if code is None:
            raise errors.OTAError(errors.PROTOCOL, "mxchip: %s answer without meta.code" % what)
        raise errors.OTAError(errors.PROTOCOL, "mxchip: %s failed: %s (%s)" % (what, message, code))

    def _put_version(self, wifi, mcu):
        body = {"device_id": self.device_id, "wifi_version": wifi, "mcu_version": mcu}
        status, obj = call(self.client, "PUT", self.server + "/api/v1/ota/version/",
                           self.headers, body)  # fmt: skip
        if status in (401, 403):
            raise errors.OTAError(errors.AUTH, "mxchip: token refused (HTTP %d)" % status)
        self._meta(obj, "version report")

    # -- the cloud interface (fota.clouds.base)

    def report_version(self, version):
        self._put_version(version, self.mcu_version())

    def check(self, version):
        pairs = (
            ("product_id", self.product_id),
            ("wifi_version", version),
            ("mcu_version", self.mcu_version()),
        )
        url = self.server + "/api/v1/ota/device/?" + query(pairs)
        status, obj = call(self.client, "GET", url, self.headers)
        if status in (401, 403):
            raise errors.OTAError(errors.AUTH, "mxchip: token refused (HTTP %d)" % status)
        self._meta(obj, "check")
        data = obj.get("data")
        if not isinstance(data, dict) or not data.get("need_ota"):
            return None
        files = data.get("files")
        if not isinstance(files, list):
            raise errors.OTAError(errors.PROTOCOL, "mxchip: need_ota without a files list")
        found = {}
        for f in files:
            if not isinstance(f, dict) or f.get("ota_type") not in (_MCU, _WIFI):
                raise errors.OTAError(
                    errors.PROTOCOL, "mxchip: file entry with an unknown ota_type"
                )
            if not isinstance(f.get("file_url"), str):
                raise errors.OTAError(errors.PROTOCOL, "mxchip: file entry without file_url")
            found.setdefault(f["ota_type"], f)
        chosen = found.get(_MCU)
        if chosen is None or (_WIFI in found and _key(chosen) == self._load().get("failed")):
            chosen = found.get(_WIFI, chosen)
        if chosen is None:
            return None
        mcu = chosen["ota_type"] == _MCU
        key = _key(chosen)
        return Offer(
            chosen["file_url"],
            None,  # no size in the check's answer: the update cycle probes the url
            md5=chosen.get("md5"),
            version=chosen.get("version"),
            module="mcu" if mcu else "wifi",
            job={
                "ota_type": chosen["ota_type"],
                "version": chosen.get("version"),
                "wifi": version,
                "key": key,
            },
            key=key,
            reboot=not mcu,
        )

    def start(self, offer):
        pass

    def progress(self, job, percent):
        pass  # the API has no progress report

    def downloaded(self, job):
        pass

    def failed(self, job, error, stage):
        if job.get("ota_type") == _MCU:
            try:
                self._save(failed=job.get("key"))  # the firmware goes first at the next check
            except OSError:
                pass  # best effort: without it the MCU file is simply offered first again
        if self.on_event:
            self.on_event("report_unsupported", {"cloud": "mxchip", "result": "failed"})

    def succeeded(self, job, version):
        if job.get("ota_type") == _MCU:
            self._save(version=job.get("version") or version, failed=None)
            self._put_version(job["wifi"], self.mcu_version())
        else:
            self._put_version(version, self.mcu_version())
