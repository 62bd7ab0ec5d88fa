# URL handling for fota.transport.http: split absolute http(s) URLs, and redirects.
#
# shown() is the form of a URL that error messages print: no password, no signed query.
#
# Runs once per new URL (the client caches the split of the last one), so it may allocate a few
# small strings. Raises ConfigError for a URL the client cannot use; the client turns that into
# ProtocolError when the URL came from a server's Location header.

from micropython import const

from fota.core.errors import CONFIG, PROTOCOL, OTAError


def authority_end(url, start):
    """The index of the first "/", "?" or "#" at or after start, else len(url): where the
    authority (host and port) ends."""
    end = len(url)
    for sep in "/?#":
        i = url.find(sep, start)
        if 0 <= i < end:
            end = i
    return end


def shown(url):
    """url as an error message may show it: the user info (a password) and the query (signed
    parameters, tokens) replaced by "***"."""
    start = url.find("://")
    start = start + 3 if start > 0 else 0
    end = authority_end(url, start)
    at = url.rfind("@", start, end)
    if at >= 0:
        url = url[:start] + "***" + url[at:]
    cut = url.find("?")
    return url if cut < 0 else url[: cut + 1] + "***"


def split(url):
    """(tls, host, port, target) of an absolute http:// or https:// URL.

    target is the path and query ("/" when empty), without the fragment. IPv6 hosts come
    without their brackets.
    """
    for c in url.encode():  # bytes: iterating the str would intern each character for good
        if c <= 32 or c == 127:
            raise OTAError(CONFIG, "URL contains a space or control character: %r" % shown(url))
    i = url.find("://")
    scheme = url[:i].lower() if i > 0 else ""
    if scheme == "https":
        tls, port = True, 443
    elif scheme == "http":
        tls, port = False, 80
    else:
        raise OTAError(CONFIG, "not an http:// or https:// URL: %r" % shown(url))
    start = i + 3
    end = authority_end(url, start)
    authority = url[start:end]
    target = url[end:]
    i = target.find("#")
    if i >= 0:
        target = target[:i]
    if not target.startswith("/"):
        target = "/" + target
    if "@" in authority:
        raise OTAError(CONFIG, "credentials in URLs are not supported: %r" % shown(url))
    if authority.startswith("["):
        i = authority.find("]")
        host = authority[1:i] if i > 0 else ""
        rest = authority[i + 1 :] if i > 0 else ""
    else:
        i = authority.find(":")
        host = authority if i < 0 else authority[:i]
        rest = "" if i < 0 else authority[i:]
    if rest:
        digits = rest[1:]
        if (
            not rest.startswith(":")
            or not digits.isdigit()
            or len(digits) > 5
            or not 0 < int(digits) < 65536
        ):
            raise OTAError(CONFIG, "bad port in URL: %r" % shown(url))
        port = int(digits)
    if not host:
        raise OTAError(CONFIG, "no host in URL: %r" % shown(url))
    return tls, host, port, target


# -- redirects
#
# follow() reads a short redirect body to keep the connection, resolves the Location against the
# URL asked for (resolve()), turns a 303 into a GET, and drops the caller's headers when the next
# request goes to another origin (scheme, host or port): credentials never follow a redirect there,
# and a request with a body is not redirected there at all. Allocates a few strings. Here, not in
# a module of their own: a check loads this module anyway, and a redirect may come in the middle
# of a download, when the heap has no room left for more code.

_DRAIN = const(1024)  # redirect bodies up to this size are read to keep the connection


def resolve(base, location):
    """The absolute URL that a Location header means relative to base (an absolute URL)."""
    if location.find("://") > 0:
        return location
    start = base.find("://") + 3
    if location.startswith("//"):
        return base[: start - 2] + location
    end = authority_end(base, start)
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
        split(new)
    except OTAError as exc:
        raise OTAError(PROTOCOL, "bad redirect Location: " + exc.message) from None
    if resp.status == 303 and method != "HEAD":
        method, body, ctype = "GET", None, False
    if split(url)[:3] != split(new)[:3]:
        # another origin: no credential goes there. Every header the caller set may carry one
        # (Authorization, Aliyun's password, a token), and so may a body (a signed /auth)
        if body:
            raise OTAError(PROTOCOL, "a redirect would send the request body to another origin")
        headers = None
    return method, new, headers, body, ctype
