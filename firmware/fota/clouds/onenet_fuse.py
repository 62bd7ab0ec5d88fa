# OneNET's new-platform ("fuse") OTA API: iot-api.heclouds.com/fuse-ota/{pro_id}/{dev_name}/...,
# answers {"code", "msg", "data", "request_id"}. Same token as the legacy API (onenet_token).
#
# From the platform's API documentation and public clients. Differences from the legacy API
# that matter here:
#  - the task id `tid` replaces the token; the download needs the Authorization header;
#  - every download answer carries `Ota-Errno`, and an error can come with HTTP 200: it is checked
#    on every answer before a body byte is used;
#  - no token-check step; `GET .../{tid}/check` tells the task status (1..6);
#  - "no task" has no agreed code (11, 1178, 12012 are all seen): any non-zero code without
#    data.tid is "no update", logged with its code.

from micropython import const

from fota.clouds.base import call, quote
from fota.clouds.onenet_token import Signer, code_for
from fota.core import errors
from fota.core.offer import Offer

_OK = const(0)
_FINISHED = const(20)  # {"code":20,"msg":"task finish"}
_AUTH_CODES = const((1, 6, 401, 403))  # auth failure codes seen (not officially tabled)
# task status of GET .../{tid}/check: 4, 5 and 6 are final
_DONE_STATUSES = const(("succeeded", "failed", "cancelled"))
# Ota-Errno meanings "1".."6" (as a public client documents them)
_OTA_ERRNO = const(
    (
        "unknown",
        "device missing",
        "file missing",
        "storage resource missing",
        "size mismatch",
        "task expired",
        "authentication failed",
    )
)
_DOWNLOADED = const(101)
_SUCCEEDED = const(201)


def ota_errno(resp):
    """Offer.inspect: Ota-Errno must be 0 on every download answer, whatever the status."""
    value = resp.header("ota-errno")
    if value is None or value.strip() == "0":
        return
    value = value.strip()
    raise errors.OTAError(
        errors.DOWNLOAD,
        "onenet-fuse: download refused: Ota-Errno %s (%s)"
        % (value, _OTA_ERRNO[int(value) if value in "123456" and len(value) == 1 else 0]),
        retryable=False,
    )


class OneNetFuse:
    name = "onenet-fuse"

    def __init__(self, client, server, cfg, clock, on_event=None):
        self.client = client
        pid = str(cfg["product_id"])
        dev = cfg["device_name"]
        self.base = "%s/fuse-ota/%s/%s" % (server.rstrip("/"), quote(pid), quote(dev))
        self.type = cfg.get("type", 1)
        self.bare_range = cfg.get("range", "bytes") == "bare"
        self.signer = Signer(cfg, clock, "products/%s/devices/%s" % (pid, dev), "2022-05-01")
        self.on_event = on_event

    def _call(self, method, path, body=None):
        """-> (code, msg, data) of one API call."""
        status, obj = call(self.client, method, self.base + path, self.signer.header(), body)
        code = obj.get("code")
        if not isinstance(code, int):
            raise errors.OTAError(errors.PROTOCOL, "onenet-fuse: HTTP %d without a code" % status)
        data = obj.get("data")
        return code, str(obj.get("msg", "")), data if isinstance(data, dict) else {}

    def _note(self, kind, info):
        if self.on_event:
            self.on_event(kind, info)

    def _status(self, job, step):
        code, msg, _ = self._call("POST", "/%s/status" % job["tid"], {"step": step})
        if code != _OK:
            self._note("report_refused", {"step": step, "code": code, "error": msg})
        return code

    def report_version(self, version):
        field = "f_version" if self.type == 1 else "s_version"
        code, msg, _ = self._call("POST", "/version", {field: version})
        if code != _OK:
            raise errors.OTAError(
                errors.PROTOCOL, "onenet-fuse: version report refused: %s (%d)" % (msg, code)
            )

    def check(self, version):
        code, msg, data = self._call(
            "GET", "/check?type=%d&version=%s" % (self.type, quote(version))
        )
        tid = data.get("tid")
        if code in _AUTH_CODES and tid is None:
            raise errors.OTAError(
                errors.AUTH, "onenet-fuse: authentication failed: %s (%d)" % (msg, code)
            )
        if code != _OK or tid is None:
            if code != _OK:
                self._note("no_task", {"code": code, "msg": msg})
            return None
        if not isinstance(tid, int) or isinstance(tid, bool):
            raise errors.OTAError(
                errors.PROTOCOL, "onenet-fuse: task id is not an integer: %r" % (tid,)
            )
        if data.get("type", 1) != 1:
            raise errors.OTAError(errors.REJECTED, "onenet-fuse: diff packages are not supported")
        auth = self.signer.header()
        return Offer(
            "%s/%d/download" % (self.base, tid),
            data.get("size"),
            md5=data.get("md5"),
            version=data.get("target"),
            job={"tid": tid},
            key="onenet-fuse|%d" % tid,
            headers=auth,
            keep=("ota-errno",),
            inspect=ota_errno,
        )

    def start(self, offer):
        code, msg, data = self._call("GET", "/%d/check" % offer.job["tid"])
        if code == _FINISHED:
            raise errors.OTAError(errors.REJECTED, "onenet-fuse: task finished: %s" % msg)
        if code != _OK:
            raise errors.OTAError(
                errors.PROTOCOL, "onenet-fuse: task check failed: %s (%d)" % (msg, code)
            )
        status = data.get("status")
        if status in (4, 5, 6):  # also 4.0: JSON numbers
            raise errors.OTAError(
                errors.REJECTED, "onenet-fuse: task %s" % _DONE_STATUSES[int(status) - 4]
            )

    def progress(self, job, percent):
        if 0 <= percent < 100:
            self._status(job, percent)

    def downloaded(self, job):
        # 101, never 100 first: the platform takes both as "download finished"
        self._status(job, _DOWNLOADED)

    def failed(self, job, error, stage):
        self._status(job, code_for(error, stage))

    def succeeded(self, job, version):
        self._status(job, _SUCCEEDED)
        self.report_version(version)
