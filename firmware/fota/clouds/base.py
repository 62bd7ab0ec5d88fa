# What every cloud module shares: URL-encoding, Unix time from the device clock, JSON calls with
# their errors translated, the one-line description of a failure for a report, and the failure
# steps Sagoo and Aliyun share.
#
# A cloud module turns its API into an Offer (fota.core.offer) and the agent's events into reports.
# Its interface, used by fota.core.update:
#   check(version) -> Offer or None     ask for an update; offer.job is a small JSON-able dict
#   start(offer)                        anything the cloud wants before the download (may raise)
#   progress(job, percent)              a download percentage, 0..99
#   downloaded(job)                     the image is in the slot and verified
#   failed(job, error, stage)           stage "download" (before activation) or "upgrade"
#   succeeded(job, version)             after the reboot into the new image, once confirmed
#   report_version(version)             tell the cloud what runs now (at boot)
# Nothing here runs in the download loop.

from micropython import const

from fota.core import errors

_SAFE = const(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_HEX = const(b"0123456789ABCDEF")
_EPOCH_2000 = const(946684800)  # seconds from 1970-01-01 to 2000-01-01 (ports with the 2000 epoch)


def quote(text):
    """Percent-encode everything but RFC 3986's unreserved characters ("/" too)."""
    out = bytearray()
    for b in text.encode():
        if b in _SAFE:
            out.append(b)
        else:  # bytes, not chr(): each chr() would intern its character for good
            out.append(37)
            out.append(_HEX[b >> 4])
            out.append(_HEX[b & 15])
    return out.decode()


def query(pairs):
    """A query string from (name, value) pairs, in the given order."""
    return "&".join(quote(k) + "=" + quote(str(v)) for k, v in pairs)


def unix_time(clock):
    """Seconds since 1970 from a `time`-like module; corrects ports whose epoch is 2000."""
    t = int(clock.time())
    gmtime = getattr(clock, "gmtime", None)
    if gmtime is not None and gmtime(0)[0] == 2000:
        t += _EPOCH_2000
    return t


def call(client, method, url, headers=None, json=None, limit=4096):
    """One API request -> (HTTP status, decoded JSON object).

    Raises DownloadError/TimeoutError for the network (from the transport), ProtocolError
    when the answer is not a JSON object; a status that is not 2xx is named in the message."""
    resp = client.request(method, url, headers=headers, json=json)
    status = resp.status
    obj = None
    if status < 500:
        try:
            obj = resp.json(limit)
        except errors.OTAError as exc:
            if status < 300 or exc.reason != errors.PROTOCOL:
                raise  # an error page's body is no news: its status is
    else:
        resp.close()
    if isinstance(obj, dict):
        return status, obj
    from fota.transport.url import shown

    what = "the cloud answered HTTP %d to %s" % (status, shown(url))
    if status >= 500:
        raise errors.OTAError(errors.DOWNLOAD, what, retryable=True)
    raise errors.OTAError(errors.PROTOCOL, what if status >= 300 else what + " with no JSON object")


def describe(error):
    """A short, secret-free text for a failure report (clouds cap such fields: 128 chars)."""
    text = error.message if isinstance(error, errors.OTAError) else str(error)
    return text[:128]


# The failure steps Sagoo and Aliyun share: "-1" the upgrade failed (after the slot switch),
# "-2" the download, "-3" the verification, "-4" the flash write.
def step_for(error, stage):
    """The Sagoo/Aliyun failure step string for an OTAError at a stage."""
    if stage == "download":
        reason = getattr(error, "reason", None)
        if reason in (errors.VERIFY, errors.VERSION):
            return "-3"
        if reason == errors.FLASH:
            return "-4"
        if reason in (errors.DOWNLOAD, errors.TIMEOUT, errors.NO_MEMORY, errors.NO_SPACE):
            return "-2"
        if reason == errors.PROTOCOL:  # a malformed answer during the download
            return "-2"
    return "-1"
