# The agent's typed errors. Every failure the agent can meet ends as one of these, and its
# `reason` is what each cloud module maps onto that cloud's failure code (OneNET 101..107 and
# 201..208, Sagoo and Aliyun "-1".."-4", ...). OSError and HTTP statuses are translated at the
# edge that meets them; nothing above that edge sees a raw OSError.

DOWNLOAD = "download"  # the server or the network failed us
NO_SPACE = "no_space"  # the image does not fit the slot
NO_MEMORY = "no_memory"  # MemoryError on the device
TIMEOUT = "timeout"  # connect or read timeout
VERIFY = "verify"  # size, digest or image header wrong
FLASH = "flash"  # erase or write of the slot failed
VERSION = "version"  # the image is not the version the offer promised, or a downgrade
CONFIG = "config"  # the device configuration is wrong
PROTOCOL = "protocol"  # the cloud answered something its API does not allow
AUTH = "auth"  # the cloud refused the device's credentials or signature (or the clock is off)
ROLLBACK = "rollback"  # the new image did not confirm itself; the bootloader went back
REJECTED = "rejected"  # the cloud closed the task: finished, cancelled, expired, wrong state


class OTAError(Exception):
    """Base of the agent's errors: `reason` is one of the constants above, args[0] the message.

    `retryable` says whether trying the same thing again later may succeed (a dropped connection)
    or cannot (a wrong digest, a 404, an image too large): the engine retries only the former.
    """

    reason = DOWNLOAD
    retryable = False

    def __init__(self, message, reason=None, retryable=None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        if retryable is not None:
            self.retryable = retryable

    @property
    def message(self):
        return self.args[0]


class DownloadError(OTAError):
    reason = DOWNLOAD
    retryable = True


class NoSpaceError(OTAError):
    reason = NO_SPACE


class NoMemoryError(OTAError):
    reason = NO_MEMORY


class TimeoutError(OTAError):  # noqa: A001 - shadows the builtin on purpose inside fota
    reason = TIMEOUT
    retryable = True


class VerifyError(OTAError):
    reason = VERIFY


class FlashError(OTAError):
    reason = FLASH


class VersionError(OTAError):
    reason = VERSION


class ConfigError(OTAError):
    reason = CONFIG


class ProtocolError(OTAError):
    reason = PROTOCOL


class AuthError(OTAError):
    reason = AUTH


class RejectedError(OTAError):
    """The cloud will not go on with this task (finished, cancelled, expired, invalid state):
    the agent gives it up instead of retrying it at every poll."""

    reason = REJECTED
