# The download engine: an offer streamed with HTTP Range requests into a flash slot.
#
# Validate, erase, write, verify, commit:
#   1. the offer is checked (size fits the slot, digest format) before any erase;
#   2. bytes arrive into one preallocated buffer, a whole number of 4096-byte blocks, read in
#      `chunk`-sized pieces through memoryviews made once (the last view of the buffer may be
#      shorter when chunk is not a divisor of it); a full buffer is hashed (MD5/SHA-256)
#      and written (each block erased once, just ahead of its write);
#   3. every `journal_blocks` blocks the committed offset goes to the journal, so a reboot resumes
#      there after re-hashing the written part from flash; a dropped connection resumes at once
#      from the bytes already received, with backoff between attempts;
#   4. at the end: digests, the image header and version, optional read-back, then set_boot.
#
# The steady-state loop (_pump) allocates nothing: no slicing, formatting or containers in it,
# only int arithmetic, readinto, hash update and writeblocks. Everything that allocates (requests,
# odd-sized reads, journal, progress) happens between pumps. Tests run _pump under
# micropython.heap_lock() to prove it. With fota.transport.http on MicroPython the pump reads
# with the socket's own readinto (Response.direct()), bounded by the body's length, and
# writes with the partition's own writeblocks (slot.writer()), so a chunk costs no Python call
# of the agent's on the way in or out; other clients' responses are read with readinto().
# Each such read is one blocking call, so the pump asks the response whether its deadline has
# passed (late()) before each read; the response's own readinto() checks it itself.
#
# The file under the URL may change between requests (a new build published, a CDN edge with
# another copy): an ETag other than the first answer's, or another total size once bytes are in
# the slot, means those bytes came from another file. The engine then starts over from byte 0
# (a retry without progress, so a file that keeps changing uses up the retries).
#
# The image's appended SHA-256 is checked by the slot's activate(): on an ESP32, set_boot() runs
# esp_ota_set_boot_partition(), whose esp_image_verify() hashes the slot (with the chip's SHA
# accelerator) and refuses a mismatch before otadata changes; the offer's MD5/SHA-256 are checked
# here, always. image_sha=True adds the agent's own check before set_boot: the digests keep a
# SHA-256 of the prefix the slot names (slot.sha_prefix) while the bytes stream past, and the
# check reads back only the few bytes after it. It costs a second hash of every byte in software
# (about half the engine's speed on the unix port, see make bench).

from micropython import const

from fota.core import errors
from fota.core.digest import Digests, hash_slot

_BLOCK = const(4096)


def _round_up(n, to):
    return (n + to - 1) // to * to


class Downloader:
    """Streams offers into a slot. One instance per download; buffers are made once, here.

    client: fota.transport.http client (get_range); slot: an Esp32Slot-like sink; journal:
    fota.core.journal;
    clock: anything with ticks_ms/ticks_diff/sleep_ms (the `time` module on a device);
    on_event(kind, info): called with "resume", "progress", "retry", "verified", never while a
    response body is half read (so the listener may use the same client).
    image_sha=True checks the image's appended SHA-256 in the agent too, before set_boot() (which
    ESP-IDF makes check it anyway); the offer's digests are always checked.
    buf: a bytearray of at least chunk rounded up to 4096 bytes, made by the caller before the
    heap fragments (the app makes it first thing in a check); else it is made here.
    """

    def __init__(
        self,
        client,
        slot,
        journal,
        clock,
        chunk=4096,
        window=524288,
        bare_range=False,
        retries=5,
        backoff_ms=1000,
        backoff_max_ms=60000,
        journal_blocks=32,
        progress_step=10,
        readback=False,
        image_sha=False,
        on_event=None,
        buf=None,
    ):
        if chunk < 256 or chunk > 65536:
            raise errors.OTAError(errors.CONFIG, "chunk must be 256..65536 bytes, got %d" % chunk)
        self.client = client  # the update cycle probes sizes with it too
        self.slot = slot
        self.journal = journal
        self.clock = clock
        self.chunk = chunk
        # The buffer: whole blocks, read in chunk-sized views (the last view may be shorter).
        size = _round_up(chunk, _BLOCK)
        self._bufsize = size
        self.window = _round_up(max(window, size), size) if window else 0
        self.bare_range = bare_range
        self.retries = retries
        self.backoff_ms = backoff_ms
        self.backoff_max_ms = backoff_max_ms
        self._commit_every = _round_up(max(journal_blocks * _BLOCK, size), size)
        self.progress_step = progress_step
        self.readback = readback
        self.image_sha = image_sha
        self.on_event = on_event
        if buf is None or len(buf) < size:
            import gc

            gc.collect()  # the buffer is the one large allocation: give it an unfragmented heap
            buf = bytearray(size)
        self.buf = buf
        self._mv = memoryview(buf)[:size]
        self._views = tuple(self._mv[i : i + chunk] for i in range(0, size, chunk))
        self._scratch = self._mv[:_BLOCK]

    # -- the steady state --------------------------------------------------------------------

    def _pump(self, read, stop):
        """Read whole views with read(view) -> n until `stop` (absolute offset) or a short read;
        hash and write full buffers. Call only at a view boundary. Updates _pos/_written, also
        when read() raises. Allocates nothing."""
        chunk = self.chunk
        views = self._views
        size = self._bufsize
        mv = self._mv
        feed = self.feed
        write = self._write
        late = self.late
        pos = self._pos
        written = self._written
        try:
            while True:
                if late is not None and late():
                    return  # the caller's next readinto() raises the timeout
                view = views[pos // chunk]
                want = len(view)
                if stop - written - pos < want:
                    return
                n = read(view)
                if n <= 0:
                    return
                pos += n
                if pos == size:
                    feed(mv)
                    try:
                        write(written // _BLOCK, mv)
                    except OSError as exc:  # from the partition itself (slot.writer())
                        raise self.slot.failed(written // _BLOCK, exc) from None
                    written += size
                    pos = 0
                if n < want:
                    return
        finally:
            self._pos = pos
            self._written = written

    def _flush(self):
        """Hash and write the full buffer. Allocates nothing."""
        self.feed(self._mv)
        self.slot.write(self._written // _BLOCK, self._mv)
        self._written += self._bufsize
        self._pos = 0

    # -- one HTTP response ---------------------------------------------------------------------

    def _read_odd(self, resp, stop):
        """Read up to the end of the current view (or `stop`) after a short read, or the last
        bytes before `stop`. Allocates a slice: happens per response, not per chunk."""
        pos = self._pos
        view_end = min((pos // self.chunk + 1) * self.chunk, self._bufsize)
        want = min(view_end - pos, stop - self._written - pos)
        n = resp.readinto(self._mv[pos : pos + want])
        if n > 0:
            self._pos += n
            if self._pos == self._bufsize:
                self._flush()
        return n

    def _discard(self, resp, count):
        """Skip `count` body bytes (a server that ignored Range sent the file from 0)."""
        if self._bufsize - self._pos >= 512:
            spare = self._mv[self._pos :]  # the free tail of the buffer
        else:
            spare = memoryview(bytearray(512))  # rare: a nearly full buffer
        while count > 0:
            n = resp.readinto(spare[: min(count, len(spare))])
            if n <= 0:
                raise errors.OTAError(
                    errors.DOWNLOAD, "connection closed while skipping to the offset"
                )
            count -= n

    def _open(self, start, end):
        """Request bytes start..end-1; return (response, end of what this response will carry,
        the offset where its body ends by its Content-Length or -1)."""
        offer = self.offer
        resp = self.client.get_range(
            offer.url, start, end - 1, bare=self.bare_range, headers=offer.headers, keep=offer.keep
        )
        self.requests += 1
        try:
            return self._check(resp, start, end)
        except errors.OTAError:
            resp.close()
            raise

    def _check(self, resp, start, end):
        # _open's judgement of an answer; raises an OTAError, the caller closes the response
        offer = self.offer
        if offer.inspect:
            offer.inspect(resp)
        status = resp.status
        if status != 206 and status != 200 and status != 416:
            retry = status >= 500 or status in (408, 429)
            raise errors.OTAError(
                errors.DOWNLOAD, "HTTP %d for the image" % status, retryable=retry
            )
        # 200: Range ignored (or OneNET's answer to a range past the end): the whole file;
        # 416 names the file's size in its Content-Range (bytes */N)
        length = resp.length
        total = length if status == 200 else resp.range_total
        tag = getattr(resp, "etag", None)
        if self.etag is None:
            self.etag = tag
        changed = tag is not None and tag != self.etag
        if total is not None and total != offer.size:
            if not start:
                raise errors.OTAError(
                    errors.VERIFY, "server has %d bytes, the offer says %d" % (total, offer.size)
                )
            changed = True
        if changed:
            self._start()
            self.journal.clear()
            raise errors.OTAError(
                errors.DOWNLOAD, "the file changed on the server: starting over", retryable=True
            )
        if status == 416:
            raise errors.OTAError(
                errors.VERIFY,
                "server cannot serve bytes %d-%d: its file is shorter than the offered %d bytes"
                % (start, end - 1, offer.size),
            )
        if status == 200:
            self._discard(resp, start)
            return resp, offer.size, -1 if length is None else length
        if resp.range_start != start or resp.range_end != end - 1:
            raise errors.OTAError(  # a server that answers so does it again: the next poll
                errors.DOWNLOAD,
                "asked for bytes %d-%d, server sent %r-%r"
                % (start, end - 1, resp.range_start, resp.range_end),
                retryable=False,
            )
        return resp, end, -1 if length is None else start + length

    def _fetch(self, start):
        """One Range request from `start`, read until its window ends. Allocation per request."""
        size = self.offer.size
        window = self.window
        end = size if not window else min(size, (start // window + 1) * window)
        resp, end, body_end = self._open(start, end)
        first = True  # the first read may return bytes that came with the head: not steady state
        read = None  # what _pump reads with: the socket's readinto (fast) or resp.readinto
        fast = False
        self.late = None
        try:
            while True:
                got = self._written + self._pos
                if got >= end:
                    break
                stop = min(end, self._next_commit)
                moved = 0
                if self._pos % self.chunk == 0 and not first:
                    if read is None:
                        # fast only where the body's length bounds every read the pump makes
                        direct = getattr(resp, "direct", None)
                        read = direct() if direct is not None and body_end >= end else None
                        fast = read is not None
                        if fast:
                            self.late = getattr(resp, "late", None)
                        else:
                            read = resp.readinto
                    self._pump(read, stop)
                    moved = self._written + self._pos - got
                    if fast:
                        resp.taken(moved)
                if moved == 0:
                    moved = self._read_odd(resp, stop)
                    first = False
                if moved <= 0:
                    raise errors.OTAError(
                        errors.DOWNLOAD,
                        "connection closed at byte %d of %d" % (got, size),
                        retryable=True,
                    )
                self._between_pumps()
        except OSError as exc:
            if fast:  # from the socket itself: the transport names it (timeout, reset ...)
                raise resp.failed(exc) from None
            resp.close()
            raise errors.OTAError(errors.DOWNLOAD, "connection lost: %s" % (exc,), retryable=True)
        except errors.OTAError:
            resp.close()
            raise
        resp.close()
        self._progress()

    def _between_pumps(self):
        """The journal: what the steady state must not do itself."""
        if self._written >= self._next_commit:
            self.journal.save(self._key, self.offer.size, self._written)
            self._next_commit = self._written + self._commit_every

    # Progress goes out only between responses, never in the middle of a body: the listener
    # usually reports it to the cloud over the same HTTP client (and its one connection). So a
    # step is announced at the end of the request (window) in which it was reached.

    def _progress(self):
        if self.progress_step and self.on_event:
            pct = (self._written + self._pos) * 100 // self.offer.size
            if pct >= self._next_pct and pct < 100:
                self._next_pct = (pct // self.progress_step + 1) * self.progress_step
                self.on_event("progress", {"percent": pct})

    # -- the whole download ----------------------------------------------------------------------

    def run(self, offer):
        """Download, verify and activate `offer`; raises an OTAError. -> self, whose size,
        version (the image's), resumed_from (bytes taken from flash after a reboot) and requests
        (HTTP requests made, retries included) tell how it went."""
        from fota.core.finish import finish

        self.fetch(offer)
        self.version = finish(*self.finishing())
        return self

    def finishing(self):
        """The arguments of fota.core.finish.finish() for what fetch() left in the slot: the
        caller may drop this engine (and its code) before it checks and activates the image."""
        return (self.slot, self.offer, self._scratch, self.journal, self.digests.prefix(),
                self.image_sha, self.readback, self.on_event)  # fmt: skip

    def fetch(self, offer, turn=0):
        """Download `offer` into the slot and check the offer's digests; raises an OTAError.
        Nothing is activated: finish() does that, after the image checks. -> self.

        turn: at most this many requests (windows) in this call, or up to a retry's backoff;
        then -> None with the download paused (the journal saved, the slot still open, the wait
        in delay_ms): the caller runs its own work and calls fetch(None, turn) to go on. 0: to
        the end, the backoffs slept here."""
        try:
            if offer is None:  # the next turn of a paused download
                offer = self.offer
            else:
                offer.check(self.slot.capacity)
                self.slot.begin(offer.size)
                self.offer = offer
                self._key = offer.key()
                self._start()
                slot = self.slot
                # the steady state writes with the partition's own writeblocks where the slot
                # offers it (one call into the flash driver per buffer, its OSError named by
                # slot.failed())
                self._write = slot.writer() if hasattr(slot, "writer") else slot.write
                self.requests = 0
                self._next_pct = self.progress_step
                self.size = offer.size
                self.resumed_from = self._resume(offer)
                self._next_commit = self._written + self._commit_every
                self.attempt = 0
            size = offer.size
            last = self.requests + turn
            self.delay_ms = 0
            while self._written + self._pos < size:
                if turn and (self.requests >= last or self.delay_ms):
                    self.journal.save(self._key, size, self._written)
                    return None
                before = self._written + self._pos
                try:
                    self._fetch(before)
                except errors.OTAError as exc:
                    if self._written + self._pos > before:
                        self.attempt = 0  # progress was made: the link works, budget anew
                    self.attempt = self._again(exc, self.attempt, self._written + self._pos)
                    if not turn:
                        self.clock.sleep_ms(self.delay_ms)
            self._finish()
            try:
                self.digests.verify()
            except errors.OTAError:
                self.journal.clear()  # the slot holds bytes the offer did not promise: no resume
                raise
            return self
        except BaseException as exc:
            close = getattr(self.slot, "close", None)  # a slot holding a file (an MCU's image)
            if close is not None:
                close()
            if isinstance(exc, MemoryError):
                raise errors.OTAError(
                    errors.NO_MEMORY, "out of memory during the download"
                ) from None
            raise

    def _start(self):
        # from byte 0: fresh digests, nothing written, the next commit one interval away
        offer = self.offer
        slot = self.slot
        prefix = 0
        if self.image_sha and hasattr(slot, "sha_prefix"):
            prefix = slot.sha_prefix(offer.size)
        self.digests = Digests(md5=offer.md5, sha256=offer.sha256, prefix=prefix)
        self.feed = self.digests.feeder()
        self._pos = 0
        self._written = 0
        self._next_commit = self._commit_every
        self.etag = None  # the first answer's ETag: another one later means another file

    def _again(self, exc, attempt, offset):
        # after a failed request: raises exc unless it is retryable and the budget allows
        # another attempt; else -> that attempt's number, its backoff in delay_ms
        attempt += 1
        if not exc.retryable or attempt > self.retries:
            raise exc
        delay = self.delay_ms = min(self.backoff_ms << (attempt - 1), self.backoff_max_ms)
        if self.on_event:
            self.on_event(
                "retry",
                {"attempt": attempt, "delay_ms": delay, "offset": offset, "error": exc.message},
            )
        return attempt

    def probe(self, offer):
        """Set offer.size from the server (a one-byte Range probe) for clouds that give none
        (Sagoo, MXCHIP), retried like the download's own requests."""
        from fota.core.offer import probe_size

        attempt = 0
        while offer.size is None:
            try:
                offer.size = probe_size(self.client, offer.url, offer.headers)
            except errors.OTAError as exc:
                attempt = self._again(exc, attempt, 0)
                self.clock.sleep_ms(self.delay_ms)

    def _resume(self, offer):
        """After a reboot: re-hash what the journal says is written and continue from there."""
        offset = self.journal.load(self._key, offer.size)
        offset -= offset % self._bufsize
        if offset <= 0:
            self.journal.clear()
            return 0
        hash_slot(self.slot.read, offset, self.digests, self._scratch)
        self._written = offset
        if self.on_event:
            self.on_event("resume", {"offset": offset})
        return offset

    def _finish(self):
        """The last, partial buffer: hash the real bytes, pad with 0xFF to a block, write."""
        pos = self._pos
        if not pos:
            return
        mv = self._mv
        self.digests.update(mv[:pos])
        end = _round_up(pos, _BLOCK)
        if pos < end:  # erased flash reads 0xFF: pad with it, in doubling copies (no byte loop)
            mv[pos] = 0xFF
            done = 1
            while pos + done < end:
                n = min(done, end - pos - done)
                mv[pos + done : pos + done + n] = mv[pos : pos + n]
                done += n
        self.slot.write(self._written // _BLOCK, mv[:end])
        self._written += pos
        self._pos = 0
