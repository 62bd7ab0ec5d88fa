# The end of an install, after the last byte is in the slot and the offer's digests matched: the
# image in the slot is checked (header, chip, the version it says it is; its appended SHA-256
# when asked), optionally read back and hashed again, then the slot becomes the boot slot and the
# resume journal goes. Nothing is switched unless every check passed.
#
# A module of its own so that the download engine's code can leave the heap before it runs: on a
# board this step, with the image checker loaded, is where the heap would otherwise peak.


def finish(slot, offer, scratch, journal, prefix=None, sha=False, readback=False, on_event=None):
    """-> the image's version. scratch: 4096 bytes or more; prefix: (SHA-256 object, n) of the
    image's first n bytes hashed while they streamed (then the check reads back only the rest).
    Raises OTAError: verify (bad image), version (not the offered version), flash."""
    try:
        return _finish(slot, offer, scratch, journal, prefix, sha, readback, on_event)
    finally:
        close = getattr(slot, "close", None)  # a slot holding a file: closed whatever happened
        if close is not None:
            close()


def _finish(slot, offer, scratch, journal, prefix, sha, readback, on_event):
    from fota.core import errors
    from fota.core.version import compare

    if prefix is not None:
        version = slot.validate(offer.size, scratch, True, prefix)
    else:
        version = slot.validate(offer.size, scratch, sha)
    if offer.version and compare(version, offer.version) != 0:
        text = "the image says version %s, the offer %s" % (version, offer.version)
        raise errors.OTAError(errors.VERSION, text)
    if readback:
        from fota.core.digest import Digests, hash_slot

        again = Digests(md5=offer.md5, sha256=offer.sha256)
        hash_slot(slot.read, offer.size, again, scratch)
        try:
            again.verify()
        except errors.OTAError as exc:
            raise errors.OTAError(errors.FLASH, "read-back of the slot differs: " + exc.message)
    if on_event:
        on_event("verified", {"size": offer.size, "version": version})
    slot.activate()
    journal.clear()
    return version
