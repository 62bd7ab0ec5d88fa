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


# Each cloud's failure code for every reason, before the slot switch (download stage) and after
# (upgrade stage): OneNET's result codes (both APIs) and the steps Sagoo and Aliyun share.
_ONENET = {
    errors.NO_SPACE: (102, 206),
    errors.NO_MEMORY: (103, 203),
    errors.TIMEOUT: (104, 206),
    errors.VERIFY: (205, 205),
    errors.VERSION: (204, 204),
}
_STEPS = {
    errors.VERIFY: "-3",
    errors.VERSION: "-3",
    errors.FLASH: "-4",
    errors.DOWNLOAD: "-2",
    errors.TIMEOUT: "-2",
    errors.NO_MEMORY: "-2",
    errors.NO_SPACE: "-2",
    errors.PROTOCOL: "-2",
}


def test_every_reason_maps_to_the_clouds_failure_codes():
    from fota.clouds.base import step_for
    from fota.clouds.onenet_token import code_for

    for reason in _REASONS:
        exc = errors.OTAError(reason, "x")
        before, after = _ONENET.get(reason, (107, 206))
        assert code_for(exc, "download") == before, reason
        assert code_for(exc, "upgrade") == after, reason
        assert step_for(exc, "download") == _STEPS.get(reason, "-1"), reason
        assert step_for(exc, "upgrade") == "-1", reason
    assert code_for(ValueError("not ours"), "download") == 107
    assert step_for(ValueError("not ours"), "download") == "-1"


def test_quote_encodes_all_but_the_unreserved_characters():
    from fota.clouds.base import query, quote

    assert quote("aZ09-_.~") == "aZ09-_.~"
    assert quote("a b/c+d=é") == "a%20b%2Fc%2Bd%3D%C3%A9"
    assert query((("ak", "x y"), ("time", 5))) == "ak=x%20y&time=5"
