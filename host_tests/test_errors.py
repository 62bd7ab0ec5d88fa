# The one error type that every cloud's failure codes are mapped from.

from dual import fails

from fota.core import errors

RUN_ON_MICROPYTHON = True

_REASONS = (
    errors.DOWNLOAD,
    errors.NO_SPACE,
    errors.NO_MEMORY,
    errors.TIMEOUT,
    errors.VERIFY,
    errors.FLASH,
    errors.VERSION,
    errors.CONFIG,
    errors.PROTOCOL,
    errors.AUTH,
    errors.ROLLBACK,
    errors.REJECTED,
)


def _raise(reason, message):
    raise errors.OTAError(reason, message)


def test_each_error_carries_its_reason_and_message():
    for reason in _REASONS:
        exc = fails(reason, _raise, reason, "what went wrong")
        assert exc.message == "what went wrong" and str(exc) == "what went wrong"
    assert len(set(_REASONS)) == len(_REASONS)


def test_only_network_failures_and_timeouts_are_retried_by_default():
    retried = [r for r in _REASONS if errors.OTAError(r, "x").retryable]
    assert retried == [errors.DOWNLOAD, errors.TIMEOUT]
    assert not errors.OTAError(errors.DOWNLOAD, "404", retryable=False).retryable
    assert errors.OTAError(errors.PROTOCOL, "busy", retryable=True).retryable
