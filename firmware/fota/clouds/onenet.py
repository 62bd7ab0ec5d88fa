# OneNET (China Mobile): the legacy OTA API (ota.heclouds.com, `/ota/...`, answers {"errno",
# "error", "data"}), as the platform's "network debugging" walk-through shows it (version, check,
# download with OneNET's own Range rules, progress/result codes) and public clients confirm
# (errno tables, the task's state machine). The token both OneNET APIs sign with is in
# onenet_token.py, the fuse API in onenet_fuse.py.
#
# Flow: check (errno 11 = no task) -> token check (pending -> downloading) -> Range download of
# /ota/south/download/{token} -> progress `step` 0..99 while downloading -> 101 when the image is
# in the slot -> reboot -> 201 and the version report. Failures: 102..107 before activation,
# 202..208 after; a finished, cancelled or expired task is given up, not retried forever.

from micropython import const

from fota.clouds.base import call, quote
from fota.clouds.onenet_token import Signer, code_for
from fota.core import errors
from fota.core.offer import Offer

# check errno
_OK = const(0)
_AUTH = const(1)
_NO_TASK = const(11)
_BAD_VERSION = const(27)
_PLATFORM = const(8)  # manuf/model do not match the task: the task is failed by the platform
_DIFF_BASE = const(9)  # a diff package for another version: the task is failed by the platform
# token check errno
_TOKEN_MISMATCH = const(4)
_EXPIRED = const(12)
_INVALID_STATE = const(17)
_FINISHED = const(20)
_INVALID_OP = const(21)
_CANCELLED = const(22)
_GIVE_UP = const((4, 12, 17, 20, 21, 22))  # the six codes above: the task cannot go on

_DOWNLOADED = const(101)
_SUCCEEDED = const(201)

# the one-byte error bodies of the download (no Content-Length): "1", "2", "3"
_BODY_ERRORS = const(("unknown error", "resource not found", "size mismatch", "invalid token"))


def body_error(resp):
    """Offer.inspect for OneNET downloads: an answer without Content-Length is an error code."""
    if resp.status == 200 and resp.length is None:
        try:
            text = resp.body(16).decode().strip()
        except (errors.OTAError, UnicodeError):
            text = "?"
        raise errors.OTAError(
            errors.DOWNLOAD,
            "onenet: download refused: %s (%s)"
            % (_BODY_ERRORS[int(text) if text in ("1", "2", "3") else 0], text),
            retryable=False,
        )


class OneNet:
    """The legacy OTA API. cfg: the "onenet" section of /ota.json; server: its base URL."""

    name = "onenet"

    def __init__(self, client, server, cfg, clock, on_event=None):
        self.client = client
        self.server = server.rstrip("/")
        self.dev_id = str(cfg["device_id"])
        self.type = cfg.get("type", 1)  # 1 FOTA (module firmware), 2 SOTA (application)
        self.manuf = cfg.get("manuf", 101)  # ESP32 in OneNET's manuf/model table
        self.model = cfg.get("model", 10101)
        self.bare_range = cfg.get("range", "bytes") == "bare"
        self.signer = Signer(cfg, clock, "products/%s" % cfg["product_id"], "2018-10-31")
        self.on_event = on_event

    # -- helpers

    def _url(self, path, extra=""):
        return "%s%s?dev_id=%s%s" % (self.server, path, quote(self.dev_id), extra)

    def _call(self, method, url, body=None):
        """-> (errno, error text, data) of one API call."""
        status, obj = call(self.client, method, url, self.signer.header(), body)
        errno = obj.get("errno")
        if not isinstance(errno, int):
            raise errors.OTAError(errors.PROTOCOL, "onenet: HTTP %d without errno" % status)
        data = obj.get("data")
        return errno, str(obj.get("error", "")), data if isinstance(data, dict) else {}

    def _note(self, kind, info):
        if self.on_event:
            self.on_event(kind, info)

    def _step(self, job, step):
        url = self._url("/ota/south/device/download/%s/progress" % quote(job["token"]))
        errno, error, _ = self._call("POST", url, {"step": step})
        if errno != _OK:
            # e.g. "invalid state" once the platform moved on: nothing the device can fix
            self._note("report_refused", {"step": step, "errno": errno, "error": error})
        return errno

    # -- the cloud interface (fota.clouds.base)

    def report_version(self, version):
        field = "f_version" if self.type == 1 else "s_version"
        errno, error, _ = self._call("POST", self._url("/ota/device/version"), {field: version})
        if errno != _OK:
            raise errors.OTAError(
                errors.PROTOCOL, "onenet: version report refused: %s (%d)" % (error, errno)
            )

    def check(self, version):
        extra = "&manuf=%s&model=%s&type=%d&version=%s&cdn=false" % (
            self.manuf,
            self.model,
            self.type,
            quote(version),
        )
        errno, error, data = self._call("GET", self._url("/ota/south/check", extra))
        if errno == _NO_TASK:
            return None
        if errno == _AUTH:
            raise errors.OTAError(
                errors.AUTH, "onenet: authentication failed: %s (check key, res, clock)" % error
            )
        if errno == _BAD_VERSION:
            raise errors.OTAError(
                errors.CONFIG, "onenet: the platform rejects version %r" % version
            )
        if errno in (_PLATFORM, _DIFF_BASE):
            raise errors.OTAError(
                errors.REJECTED, "onenet: task failed by the platform: %s (%d)" % (error, errno)
            )
        if errno != _OK:
            raise errors.OTAError(errors.PROTOCOL, "onenet: check failed: %s (%d)" % (error, errno))
        tok = data.get("token")
        if not isinstance(tok, str) or not tok:
            raise errors.OTAError(errors.PROTOCOL, "onenet: check answer without a token")
        if data.get("type", 1) != 1:
            raise errors.OTAError(errors.REJECTED, "onenet: diff packages are not supported")
        return Offer(
            self.server + "/ota/south/download/" + quote(tok),
            data.get("size"),
            md5=data.get("md5"),
            version=data.get("target"),
            job={"token": tok},
            key="onenet|" + tok,
            inspect=body_error,
        )

    def start(self, offer):
        """The token check: moves the task from pending to downloading."""
        url = self._url("/ota/south/download/%s/check" % quote(offer.job["token"]))
        errno, error, _ = self._call("GET", url)
        if errno in _GIVE_UP:
            raise errors.OTAError(
                errors.REJECTED, "onenet: task not downloadable: %s (%d)" % (error, errno)
            )
        if errno != _OK:
            raise errors.OTAError(
                errors.PROTOCOL, "onenet: token check failed: %s (%d)" % (error, errno)
            )

    def progress(self, job, percent):
        if 0 <= percent < 100:
            self._step(job, percent)

    def downloaded(self, job):
        self._step(job, _DOWNLOADED)

    def failed(self, job, error, stage):
        self._step(job, code_for(error, stage))

    def succeeded(self, job, version):
        self._step(job, _SUCCEEDED)
        self.report_version(version)
