# The agent's one error type. Every failure the agent can meet ends as an OTAError whose `reason`
# is what each cloud module maps onto that cloud's failure code (OneNET 101..107 and 201..208,
# Sagoo and Aliyun "-1".."-4", ...). OSError and HTTP statuses are translated at the edge that
# meets them; nothing above that edge sees a raw OSError.
#
# One class with a reason, not a class per reason: every class costs heap on a board, and code
# that handles errors asks for the reason anyway.

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

# Where a failure happened, for the clouds whose codes differ before and after the slot switch,
# is a plain string: "download" (before activation: the running image is untouched) or
# "upgrade" (after: the new image did not come up, a rollback).


class OTAError(Exception):
    """OTAError(reason, message, retryable=None): `reason` is one of the names above.

    `retryable` says whether trying the same thing again later may succeed (a dropped
    connection) or cannot (a wrong digest, a 404, an image too large): the engine retries only
    the former. By default only network failures and timeouts are.
    """

    def __init__(self, reason, message, retryable=None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        if retryable is None:
            retryable = reason == DOWNLOAD or reason == TIMEOUT
        self.retryable = retryable
