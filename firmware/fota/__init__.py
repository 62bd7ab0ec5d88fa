# fota: an over-the-air update agent for MicroPython boards.
#
# The package is layered (see README "Architecture"): core modules receive the transport, the
# flash slot and the cloud client as arguments and never import hardware or cloud modules. Nothing
# here touches hardware at import time.

__version__ = "0.1.0"
