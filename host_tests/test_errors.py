# The error hierarchy that every cloud's failure codes are mapped from.

from dual import raises
from fota.core import errors

RUN_ON_MICROPYTHON = True


def _raise(cls, message):
    raise cls(message)


def test_each_error_carries_its_reason():
    table = (
        (errors.DownloadError, errors.DOWNLOAD),
        (errors.NoSpaceError, errors.NO_SPACE),
        (errors.NoMemoryError, errors.NO_MEMORY),
        (errors.TimeoutError, errors.TIMEOUT),
        (errors.VerifyError, errors.VERIFY),
        (errors.FlashError, errors.FLASH),
        (errors.VersionError, errors.VERSION),
        (errors.ConfigError, errors.CONFIG),
        (errors.ProtocolError, errors.PROTOCOL),
    )
    reasons = set()
    for cls, reason in table:
        exc = raises(errors.OTAError, _raise, cls, "what went wrong")
        assert isinstance(exc, cls)
        assert exc.reason == reason
        assert exc.message == "what went wrong"
        reasons.add(reason)
    assert len(reasons) == len(table)


def test_reason_can_be_given_at_the_raise_site():
    exc = errors.OTAError("slot erase failed", errors.FLASH)
    assert exc.reason == errors.FLASH
    assert errors.OTAError("x").reason == errors.DOWNLOAD
