# TLS for fota.transport.http, imported on the first https connection.
#
# The context verifies the server's certificate against the configured CA (DER) and its host
# name; MicroPython's SSLContext does not verify unless told to. Made once per
# client. A failed verification is a DownloadError that says so; a CA that does not load is a
# ConfigError.

import ssl

from fota.core.errors import CONFIG, DOWNLOAD, OTAError


def wrap(client, raw, host, port):
    """The TLS socket around the connected socket `raw`; closes raw and raises on failure."""
    ctx = client._ctx
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_verify_locations(cadata=client.ca)
        except (ValueError, OSError) as exc:
            raw.close()
            raise OTAError(CONFIG, "the CA is not a usable DER certificate: %s" % exc) from None
        client._ctx = ctx
    try:
        return ctx.wrap_socket(raw, server_hostname=host)
    except (ValueError, OSError) as exc:
        raw.close()
        # MicroPython raises ValueError (older ports OSError(-0x2700), mbedTLS's
        # X509_CERT_VERIFY_FAILED), CPython SSLCertVerificationError, a ValueError too
        if isinstance(exc, ValueError) or exc.args[:1] == (-0x2700,):
            reason = str(exc).strip()
            raise OTAError(  # not retried now (it cannot heal in seconds), tried at the next poll
                DOWNLOAD, "TLS verification of %s failed: %s" % (host, reason), retryable=False
            ) from None
        raise client._fail(exc, "TLS handshake with %s:%d" % (host, port)) from None
