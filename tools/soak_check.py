# The soak's invariants (tools/soak.py): what must hold after each scenario, checked on its
# records. Pure functions over plain data, so that a test can feed them a fabricated bad record.
#
# A scenario's record (a dict):
#   runs      [{"events": [board events], "writes": [write-log records], "status": exit}]:
#             each `vboard.py boot` run, the faulty one first, then the runs without faults
#   final     `vboard.py inspect` after the last run
#   cloud     the emulator's name; log: its request log (/_emu/log); state: /_emu/state
#   downloads the proxy's records of the image's requests ({"range", "status", "sent", "size",
#             "fault"}), in order, over every run
#   old, new  the versions before and after; sha256: the new image's
#   fault     the proxy's mode (e.g. "flip-at=random"); chunk: bytes per read; block: 4096
# check(record) -> (violations: [str], facts: {...}) where facts feed the soak's table.

APP_LABELS = ("factory", "ota_0", "ota_1")  # the app slots of the ESP32 boards' tables
# The failures each fault of the proxy may cause while it is on (a reason of the `failed` event);
# a fault the download engine absorbs may cause none: any other failure is a violation.
ALLOWED_FAILURES = {
    "reset-at": ("download",),  # retried; fails only when the retries run out
    "truncate-at": ("download",),
    "stall-at": ("timeout", "download"),
    "drip": ("timeout", "download"),
    "flip-at": ("verify",),  # the digest catches it; the offer is given up
    "status": ("download",),  # 5xx retried, 404 fails at once
    "redirect-loop": ("download",),
}
# the emulators' task states after a failure report (MXCHIP has no failure report)
_CLOSED = {
    "onenet": ("task", "failed"),
    "onenet-fuse": ("task", "failed"),
    "sagoo": ("batch", "failed"),
    "aliyun": ("job", "failed"),
}


def task_closed(cloud, state):
    """Did the cloud close the update task after a failure report (/_emu/state)?"""
    if cloud not in _CLOSED:
        return False
    key, closed = _CLOSED[cloud]
    return (state.get(key) or {}).get("state") == closed


def _kinds(events):
    return [e.get("event") for e in events]


def boot_slots(run):
    """{boot number: (slot, version, state)} of one run's boot events."""
    return {
        e["boot"]: (e["slot"], e.get("version"), e.get("state"))
        for e in run["events"]
        if e.get("event") == "boot" and "slot" in e
    }


def running_slot_writes(run):
    """Writes to the slot the board was running, in one run: [(boot, record)]."""
    slots = boot_slots(run)
    return [
        (w["boot"], w)
        for w in run["writes"]
        if w["boot"] in slots and w["label"] == slots[w["boot"]][0]
    ]


def unverified_boots(runs, final, sha256):
    """Boots of a switched slot (not a rollback) whose image is not the published one as it was
    when otadata switched to it: the slot was written after the switch's otadata write, or it
    does not hold the published image's bytes (sha256) now; a slot no run wrote holds the
    board's original image and is not counted. The agent verifies size, digest
    and header before set_boot(); this checks the result on the flash itself."""
    out = []
    digests = {s["label"]: s.get("sha256") for s in final.get("slots", [])}
    # a slot nothing wrote holds the image the board came with (a torn otadata entry sends the
    # bootloader back to it without a rollback of its own)
    written = {w["label"] for run in runs for w in run["writes"] if w["label"] in APP_LABELS}
    previous = None  # (run index, boot) of the previous boot
    last_slot = None
    for i, run in enumerate(runs):
        for e in run["events"]:
            if e.get("event") != "boot" or "slot" not in e:
                continue
            n, slot = e["boot"], e["slot"]
            rolled = any(x.get("event") == "rollback" and x.get("boot") == n for x in run["events"])
            if last_slot is not None and slot != last_slot and not rolled and slot in written:
                pi, pn = previous
                writes = [w for w in runs[pi]["writes"] if w["boot"] == pn]
                switch = max(
                    (k for k, w in enumerate(writes) if w["label"] == "otadata"), default=None
                )
                late = switch is not None and any(w["label"] == slot for w in writes[switch:])
                if switch is None or late or digests.get(slot) != sha256:
                    out.append(
                        "run %d boot %d: %s (%s) booted without the published image in it"
                        % (i, n, slot, e.get("version"))
                    )
            previous, last_slot = (i, n), slot
    for run in runs:
        for e in run["events"]:
            if e.get("event") == "rollback" and e.get("reason") == "invalid image":
                out.append("boot %d: otadata chose an invalid image" % e["boot"])
    return out


# --- the cloud's view ----------------------------------------------------------------------------


def _params(body):
    if isinstance(body, dict):
        inner = body.get("params")
        return inner if isinstance(inner, dict) else body
    return {}


def reports(cloud, log):
    """The emulator's log as the outcome-relevant sequence: ("check", version or None),
    ("progress", p), ("downloaded",), ("failed", code), ("succeeded",), ("version", v)."""
    out = []
    for r in log:
        ep = r.get("endpoint")
        body = _params(r.get("json"))
        query = r.get("query") or {}
        if ep == "check":
            if cloud == "sagoo":
                out.append(("check", query.get("version")))
            elif cloud == "mxchip":
                out.append(("check", query.get("wifi_version")))
            else:
                out.append(("check", None))
        elif ep == "progress":
            step = body.get("step")
            if cloud in ("onenet", "onenet-fuse"):
                if not isinstance(step, int):
                    out.append(("malformed", step))
                elif step == 101:
                    out.append(("downloaded",))
                elif step == 201:
                    out.append(("succeeded",))
                elif 0 <= step <= 100:
                    out.append(("progress", step))
                else:
                    out.append(("failed", step))
            else:
                text = str(step)
                if text == "100":
                    out.append(("downloaded",))
                elif text.startswith("-"):
                    out.append(("failed", text))
                else:
                    out.append(("progress", text))
        elif ep in ("version", "inform"):
            v = body.get("f_version") or body.get("wifi_version") or body.get("version")
            out.append(("version", v))
    return out


def report_violations(cloud, seq, old, new, runs_new, resend_ok=False):
    """The rules over reports(): no success without the new version, no progress after a
    failure (until the next check starts another attempt), no outcome twice. runs_new: does
    the board end running `new`, confirmed? resend_ok: a power cut came after an outcome was
    reached, so the same outcome may go out again (the cut can fall between the cloud's answer
    and the state file's record of it). -> (violations, success seen, outcomes sent again)"""
    bad = []
    resent = 0
    failed = False  # a failure since the last check
    succeeded = False
    successes = 0
    for i, item in enumerate(seq):
        kind = item[0]
        # the success signal: OneNET's 201; Sagoo's check with the new version; Aliyun's and
        # MXCHIP's version report (an MXCHIP check names the version but records nothing)
        success = kind == "succeeded" or (
            not succeeded
            and item[1:] == (new,)
            and (kind, cloud) in (("check", "sagoo"), ("version", "aliyun"), ("version", "mxchip"))
        )
        if kind == "malformed":
            bad.append("report %d: malformed step %r" % (i, item[1]))
        if kind == "check" and item[1] not in (None, old, new):
            bad.append("report %d: a check with version %r" % (i, item[1]))
        if kind == "check":
            failed = False
        if kind == "version" and item[1] not in (old, new):
            bad.append("report %d: version %r reported" % (i, item[1]))
        if kind in ("progress", "downloaded") and failed:
            bad.append("report %d: %s after a failure" % (i, kind))
        if kind in ("progress", "downloaded") and succeeded:
            bad.append("report %d: %s after the success" % (i, kind))
        if kind == "failed":
            if failed and resend_ok:
                resent += 1
            elif failed:
                bad.append("report %d: a second failure (%r) in one attempt" % (i, item[1]))
            if succeeded:
                bad.append("report %d: a failure (%r) after the success" % (i, item[1]))
            failed = True
        if success:
            successes += 1
            if kind == "succeeded" and successes > 1 and resend_ok:
                resent += 1
            elif kind == "succeeded" and successes > 1:
                bad.append("report %d: success reported twice" % i)
            succeeded = True
    if succeeded and not runs_new:
        bad.append("the cloud was told of success, but the board does not run %s" % new)
    if cloud in ("onenet", "onenet-fuse") and succeeded:
        versions = [x[1] for x in seq if x[0] == "version"]
        if not versions or versions[-1] != new:
            bad.append("success without the version report of %s" % new)
    return bad, succeeded, resent


# --- re-fetch ------------------------------------------------------------------------------------


def _span(rng, size):
    # "bytes=a-b" (or OneNET's bare "a-b") -> (a, b + 1); None: the whole file
    if not rng:
        return None
    text = rng.split("=")[-1]
    a, _, b = text.partition("-")
    try:
        start = int(a)
        end = int(b) + 1 if b else size
    except ValueError:
        return None
    return start, end


def _overlap(intervals, a, b):
    total = 0
    for s, e in intervals:
        lo, hi = max(s, a), min(e, b)
        if hi > lo:
            total += hi - lo
    return total


def network_refetch(downloads, events):
    """Per network interruption the agent noticed (a `retry` event: it goes on from `offset`,
    the bytes it holds): the bytes the server had sent in the interrupted answer that the next
    request asks for again. -> (largest after an answer truncated, stalled or dripped,
    largest after a TCP reset). After a reset the count includes what the board's TCP stack
    dropped with the reset before the agent could read it (the server sent it, the board never
    had it), so only the first is bounded by a chunk. An answer cut short by a power cut has
    no retry event: power_refetch() counts those."""
    resumes = {e["offset"] for e in events if e.get("event") == "retry" and "offset" in e}
    worst = [0, 0]
    previous = None  # (start, end, reset?) of the bytes the interrupted answer sent
    for d in downloads:
        span = _span(d.get("range"), d.get("size"))
        if span is None or d.get("status") not in (200, 206):
            continue
        a, b = span
        if previous is not None and a in resumes:
            i = 1 if previous[2] else 0
            worst[i] = max(worst[i], _overlap([previous[:2]], a, b))
        previous = None
        if d.get("fault") and d.get("sent") is not None and d["sent"] < b - a:
            previous = (a, a + d["sent"], str(d["fault"]).startswith("reset"))
    return tuple(worst)


def power_refetch(runs, block):
    """After each power cut in a download: the bytes the board had programmed in full into the
    new slot (contiguously from byte 0) before the cut, that it downloaded again after the
    reboot: that end minus the offset the `resume` event names (0 when it started over).
    -> the largest, in bytes (None: no cut in a download)."""
    worst = None
    for run in runs:
        slots = boot_slots(run)
        cut = [e for e in run["events"] if e.get("event") == "power_cut"]
        for c in cut:
            n = c["boot"]
            mine = [e.get("event") for e in run["events"] if e.get("boot") == n]
            tail = mine[len(mine) - mine[::-1].index("start") :] if "start" in mine else None
            if tail is None or "failed" in tail or "verified" in tail:
                continue  # no download going on: nothing the cut could make it fetch again
            running = slots.get(n, (None,))[0]
            done = set()
            kept = [w for w in run["writes"] if w["boot"] == n][:-1]  # the last: the one cut
            for w in kept:
                if w["label"] in (None, running) or w["label"] not in APP_LABELS:
                    continue
                if w["op"] == "program" and w["size"] >= block:
                    done.add(w["offset"] // block)
            if not done:
                continue
            end = 0
            while end // block in done:
                end += block
            later = [e for e in run["events"] if e.get("boot", 0) > n]
            resume = next(
                (e["offset"] for e in later if e.get("event") == "resume"),
                0 if any(e.get("event") == "start" for e in later) else None,
            )
            if resume is None:
                continue  # the download did not go on (e.g. the cut was its last write)
            worst = max(worst or 0, end - resume)
    return worst


# --- the whole scenario --------------------------------------------------------------------------


def _confirmed(final):
    booted = final.get("booted")
    best = None
    for entry in final.get("otadata", []):
        if entry.get("crc_ok") and entry.get("slot") == booted:
            if best is None or entry["seq"] > best["seq"]:
                best = entry
    return best is not None and best.get("state") == "VALID"


def check(rec):
    """-> (violations, facts) for one scenario's record (see the header)."""
    bad = []
    runs, final = rec["runs"], rec["final"]
    old, new = rec["old"], rec["new"]
    events = [e for run in runs for e in run["events"]]
    kinds = _kinds(events)
    facts = {"power_cuts": kinds.count("power_cut"), "bricked": False}

    # the board boots a valid image
    slots = {s["label"]: s for s in final.get("slots", [])}
    booted = slots.get(final.get("booted"), {})
    nxt = (final.get("next_boot") or {}).get("slot")
    if not booted.get("valid") or nxt is None or not slots.get(nxt, {}).get("valid"):
        facts["bricked"] = True
        bad.append("bricked: booted %s, next boot %s" % (final.get("booted"), nxt))
    for i, run in enumerate(runs):
        if run["status"] not in (0,):
            bad.append("run %d: vboard exit status %s" % (i, run["status"]))
    for e in events:
        if e.get("event") in ("crash", "error") and (
            e.get("event") == "crash" or e.get("reason") == "internal"
        ):
            bad.append("the agent broke: %s" % e)

    # the running image was never written
    for i, run in enumerate(runs):
        for boot, w in running_slot_writes(run):
            bad.append(
                "run %d boot %d: wrote the running slot %s at %d"
                % (i, boot, w["label"], w["offset"])
            )

    # a switched boot slot always holds a verified image
    unverified = unverified_boots(runs, final, rec["sha256"])
    facts["unverified_boots"] = len(unverified)
    bad += unverified
    if booted.get("version") == new and booted.get("sha256") != rec["sha256"]:
        bad.append("the board runs %s with other bytes than the published image" % new)

    # once the faults stop, the update completes (or ends as the design says it must)
    runs_new = booted.get("version") == new and _confirmed(final)
    mode = rec["fault"].split("=")[0]
    allowed = ALLOWED_FAILURES.get(mode, ())
    failed = []
    for i, run in enumerate(runs):
        for e in run["events"]:
            if e.get("event") != "failed":
                continue
            failed.append(e)
            if i > 0:
                bad.append("run %d: failed after the faults stopped: %s" % (i, e.get("error")))
            elif e.get("reason") not in allowed:
                bad.append(
                    "failed (%s) under fault %s: %s"
                    % (e.get("reason"), rec["fault"], e.get("error"))
                )
    cut_unconfirmed = any(
        c.get("event") == "power_cut" and _new_image_unconfirmed(run, c["boot"])
        for run in runs
        for c in run["events"]
    )
    closed = task_closed(rec["cloud"], rec.get("state") or {})
    if runs_new:
        outcome = "completed"
    elif cut_unconfirmed and "rolled_back" in kinds:
        outcome = "rolled back"  # the power failed before the new image was confirmed
    elif failed and (closed or any(f.get("reason") == "verify" for f in failed)):
        outcome = "failed"  # reported while the faults were on: the cloud closed the task, or
        # the image's digest was wrong and the offer is given up
    else:
        outcome = "incomplete"
        bad.append(
            "the update did not complete: the board runs %s; failures %s"
            % (booted.get("version"), [(f.get("reason"), f.get("error")) for f in failed])
        )
    facts["outcome"] = outcome

    # the cloud saw a consistent report sequence
    seq = reports(rec["cloud"], rec["log"])
    resend_ok = any(
        c.get("event") == "power_cut" and _after_outcome(run, c["boot"])
        for run in runs
        for c in run["events"]
    )
    rbad, told, facts["resent"] = report_violations(
        rec["cloud"], seq, old, new, runs_new, resend_ok
    )
    bad += rbad
    if outcome == "completed" and not told:
        bad.append("the board runs %s but the cloud was never told" % new)
    if outcome in ("failed", "rolled back") and rec["cloud"] != "mxchip":
        if not any(x[0] == "failed" for x in seq):
            bad.append("%s, but the cloud got no failure report" % outcome)

    # bytes fetched again per interruption
    facts["refetch_network"], facts["refetch_reset"] = network_refetch(rec["downloads"], events)
    facts["refetch_power"] = power_refetch(runs, rec["block"])
    if facts["refetch_network"] > rec["chunk"]:
        bad.append(
            "re-fetched %d bytes after an interrupted answer (chunk %d)"
            % (facts["refetch_network"], rec["chunk"])
        )
    if (facts["refetch_power"] or 0) > rec["block"] * rec["journal_blocks"]:
        bad.append(
            "re-fetched %d bytes the board had in flash after a power cut"
            % (facts["refetch_power"])
        )
    return bad, facts


def _after_outcome(run, boot):
    """Did the power cut of `boot` come after the update's outcome was reached in that boot?"""
    return any(
        e.get("boot") == boot and e.get("event") in ("confirmed", "rolled_back", "failed")
        for e in run["events"]
    )


def _new_image_unconfirmed(run, boot):
    """Was boot `boot` of this run the new image's first, cut before it was confirmed?"""
    slot = boot_slots(run).get(boot)
    if slot is None or slot[2] != "PENDING_VERIFY":
        return False
    return not any(e.get("event") == "confirmed" and e.get("boot") == boot for e in run["events"])
