# Sagoo IoT: the HTTP OTA API (get_ota_info / write_ota_info) with AK/SK query signatures.
#
# From Sagoo's OTA documentation (endpoints, fields, step strings) and public clients (the
# signature: lowercase hex HMAC-SHA256 of "ak=..&time=.." under sk, sent as query parameters with
# appId; success is code 0 or "200"; write_ota_info's body wrapped in "params" since 2024-02, flat
# before).
#
# get_ota_info gives url, version, sign and signMethod (MD5 or SHA256, any case) but no size: the
# size comes from a one-byte Range probe of the url (Content-Range total) before anything is
# erased. Steps: "1".."100" progress, "-1" upgrade failed, "-2" download failed, "-3" verify
# failed, "-4" flash write failed; every report echoes the batch `strategy` from extData. Over
# HTTP there is no version report: the next get_ota_info carries the running version.

from micropython import const

from fota.clouds.base import call, describe, query, step_for, unix_time
from fota.core import errors, hmac  # every request signs: loaded with the module
from fota.core.offer import Offer

_PREFIX = const("/base-api/openapi/v1/ota/")


def sign(ak, sk, t):
    """The AK/SK signature: lowercase hex HMAC-SHA256(sk, "ak=<ak>&time=<t>")."""
    return hmac.hexdigest("sha256", sk, "ak=%s&time=%d" % (ak, t))


def _ok(code):
    return code == 0 or code == "0" or code == 200 or code == "200"


class Sagoo:
    name = "sagoo"

    def __init__(self, client, server, cfg, clock, on_event=None):
        self.client = client
        self.server = server.rstrip("/")
        self.prefix = cfg.get("prefix", _PREFIX)
        self.device_key = cfg["device_key"]
        self.ak = cfg["ak"]
        self.sk = cfg["sk"]
        self.app_id = cfg.get("app_id")
        self.module = cfg.get("module", "default")
        self.flat = cfg.get("body", "params") == "flat"
        self.clock = clock
        self.on_event = on_event

    def _url(self, endpoint, pairs=()):
        t = unix_time(self.clock)
        auth = [("ak", self.ak), ("time", t), ("sign", sign(self.ak, self.sk, t))]
        if self.app_id:
            auth.append(("appId", self.app_id))
        return self.server + self.prefix + endpoint + "?" + query(list(pairs) + auth)

    def _call(self, method, url, body=None):
        status, obj = call(self.client, method, url, None, body)
        code = obj.get("code")
        if not _ok(code):
            return False, code, str(obj.get("message", "")), None
        return True, code, "", obj.get("data")

    def _note(self, kind, info):
        if self.on_event:
            self.on_event(kind, info)

    def _write(self, job, step, desc=""):
        params = {"deviceKey": self.device_key, "step": step, "strategy": str(job["strategy"])}
        if self.flat:
            params["module"] = job.get("module") or self.module
            params["desc"] = desc
            body = params
        else:
            body = {"params": params}
        ok, code, message, _ = self._call("POST", self._url("write_ota_info"), body)
        if not ok:
            self._note("report_refused", {"step": step, "code": code, "error": message})

    # -- the cloud interface (fota.clouds.base)

    def report_version(self, version):
        # No HTTP version report exists: the check carries the version.
        self.check(version)

    def check(self, version):
        pairs = (("deviceKey", self.device_key), ("version", version), ("module", self.module))
        ok, code, message, data = self._call("GET", self._url("get_ota_info", pairs))
        if not ok:
            if code in (61, "61", 401, "401"):
                raise errors.OTAError(
                    errors.AUTH, "sagoo: not authorized: %s (%s)" % (message, code)
                )
            raise errors.OTAError(
                errors.PROTOCOL, "sagoo: get_ota_info failed: %s (%s)" % (message, code)
            )
        if not isinstance(data, dict) or not data.get("url"):
            return None
        target = data.get("version")
        if target == version:
            return None
        method = str(data.get("signMethod", "")).lower()
        digest = data.get("sign")
        if method not in ("md5", "sha256"):
            raise errors.OTAError(
                errors.PROTOCOL, "sagoo: unknown signMethod %r" % (data.get("signMethod"),)
            )
        ext = data.get("extData")
        strategy = ext.get("strategy") if isinstance(ext, dict) else None
        if strategy is None:
            raise errors.OTAError(
                errors.PROTOCOL, "sagoo: offer without extData.strategy (the batch id)"
            )
        url = data["url"]
        size = data.get("size")  # None: the update cycle probes the url before the download
        module = data.get("module") or self.module
        return Offer(
            url,
            size,
            md5=digest if method == "md5" else None,
            sha256=digest if method == "sha256" else None,
            version=target,
            module=module,
            job={"strategy": strategy, "module": module},
            key="sagoo|%s|%s|%s" % (strategy, target, digest),
        )

    def start(self, offer):
        pass

    def progress(self, job, percent):
        if 1 <= percent < 100:
            self._write(job, str(percent))

    def downloaded(self, job):
        self._write(job, "100")

    def failed(self, job, error, stage):
        self._write(job, step_for(error, stage), describe(error))

    def succeeded(self, job, version):
        self.report_version(version)
