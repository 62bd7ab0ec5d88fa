# Redirects for fota.transport.http, imported on the first 3xx with a Location.
#
# follow() reads a short redirect body to keep the connection, resolves the Location against the
# URL asked for (resolve()), turns a 303 into a GET, and drops the caller's headers when the next
# request goes to another origin (scheme, host or port): credentials never follow a redirect there,
# and a request with a body is not redirected there at all. Allocates a few strings.

from micropython import const

from fota.core.errors import PROTOCOL, OTAError
from fota.transport import url as _url

_DRAIN = const(1024)  # redirect bodies up to this size are read to keep the connection


def resolve(base, location):
    """The absolute URL that a Location header means relative to base (an absolute URL)."""
    if location.find("://") > 0:
        return location
    start = base.find("://") + 3
    if location.startswith("//"):
        return base[: start - 2] + location
    end = _url.authority_end(base, start)
    origin = base[:end]
    if location.startswith("/"):
        return origin + location
    path = base[end:]
    if location.startswith("?"):
        return origin + path.split("?")[0].split("#")[0] + location
    for sep in "?#":
        i = path.find(sep)
        if i >= 0:
            path = path[:i]
    return origin + path[: path.rfind("/") + 1] + (location if path else "/" + location)


def follow(resp, method, url, headers, body, ctype):
    """-> (method, url, headers, body, ctype) of the request the redirect `resp` asks for."""
    location = resp.location
    try:
        resp.body(_DRAIN)  # keeps the connection for a same-host redirect
    except OTAError as exc:  # a long body: the connection closes, the redirect still goes
        if exc.reason != PROTOCOL:
            raise
    new = resolve(url, location)
    try:
        _url.split(new)
    except OTAError as exc:
        raise OTAError(PROTOCOL, "bad redirect Location: " + exc.message) from None
    if resp.status == 303 and method != "HEAD":
        method, body, ctype = "GET", None, False
    if _url.split(url)[:3] != _url.split(new)[:3]:
        # another origin: no credential goes there. Every header the caller set may carry one
        # (Authorization, Aliyun's password, a token), and so may a body (a signed /auth)
        if body:
            raise OTAError(PROTOCOL, "a redirect would send the request body to another origin")
        headers = None
    return method, new, headers, body, ctype
