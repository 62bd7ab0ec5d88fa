# The offer: what the cloud says to install, in one shape for every cloud.
#
# Cloud modules build an Offer from their API's answer; the engine only reads it. check() runs
# before anything is erased: a malformed offer is refused while the slot is still untouched.

from micropython import const

from fota.core import errors

_SCHEMES = const(("http://", "https://"))


class Offer:
    def __init__(
        self,
        url,
        size,
        md5=None,
        sha256=None,
        version=None,
        module=None,
        job=None,
        key=None,
        headers=None,
        keep=None,
        inspect=None,
        reboot=True,
    ):
        self.url = url
        self.size = size
        self.md5 = md5
        self.sha256 = sha256
        self.version = version
        self.module = module
        self.job = job  # the cloud's task/job/batch id, echoed in its reports
        self._key = key
        # For the cloud's download quirks: request headers (e.g. its token), names of response
        # headers to keep, and inspect(response), called on every answer before its body is
        # read, which raises an OTAError when the cloud signals an error in-band.
        self.headers = headers
        self.keep = keep
        self.inspect = inspect
        # False for an image that is not this board's firmware (an attached MCU's): installed
        # without a reboot, and its success is reported at once.
        self.reboot = reboot

    def key(self):
        """What makes two offers the same download (for resume): the cloud may give a stable key
        when its URLs carry short-lived tokens; else url, size, digests and version."""
        if self._key:
            return self._key
        return "%s|%s|%s|%s|%s" % (
            self.url,
            self.size,
            self.md5 or "",
            self.sha256 or "",
            self.version or "",
        )

    def check(self, capacity=None):
        """Raise if the offer is malformed (a field of the wrong type, no digest, a size that is
        not a positive integer), or, given the slot's capacity, if it has no size or does not
        fit. Without a capacity (as the offer comes) a missing size passes: it is probed."""
        if not isinstance(self.url, str) or not self.url.startswith(_SCHEMES):
            raise errors.OTAError(errors.PROTOCOL, "offer url must be http:// or https://")
        for value in (self.md5, self.sha256, self.version):
            if value is not None and not isinstance(value, str):
                raise errors.OTAError(
                    errors.PROTOCOL, "offer digest or version is not a string: %r" % (value,)
                )
        if not self.md5 and not self.sha256:
            raise errors.OTAError(
                errors.PROTOCOL, "offer carries no md5 or sha256 to verify the image with"
            )
        size = self.size
        if capacity is None and size is None:
            return
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise errors.OTAError(
                errors.PROTOCOL, "offer size must be a positive integer, got %r" % (size,)
            )
        if capacity is not None and size > capacity:
            raise errors.OTAError(
                errors.NO_SPACE,
                "image of %d bytes does not fit the %d-byte slot" % (size, capacity),
            )


def probe_size(client, url, headers=None):
    """The size of the file at url, from a one-byte Range probe (Content-Range total), for
    clouds and manual updates that give no size. Raises DownloadError when the server won't say."""
    resp = client.get_range(url, 0, 0, headers=headers)
    status, total, length = resp.status, resp.range_total, resp.length
    if status == 206:
        resp.body(16)
    else:
        resp.close()
    size = total if status == 206 else length if status == 200 else None
    if not isinstance(size, int) or size <= 0:
        raise errors.OTAError(
            errors.DOWNLOAD,
            "cannot learn the image size from %s (HTTP %d)" % (url, status),
            retryable=status >= 500,
        )
    return size
