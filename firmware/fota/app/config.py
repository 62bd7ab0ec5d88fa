# /ota.json: load and validate the device configuration.
#
# Strict on purpose: an unknown key or a wrong type is a ConfigError that names the key (a typo
# in "poll_s" must not silently poll every hour). Only the chosen cloud's section is required;
# the defaults below fill the rest. Runs once per boot, and its code is released after.
# Every mistake a config can hold is caught here, at start, where it stops the agent with one
# error event: a value a cloud would refuse later (a "method" it cannot sign with), https
# without a CA, a CA file that is missing or not DER. The host tools (deploy, fsimage) run this
# same module under CPython before anything is written.

from micropython import const

from fota.core.errors import CONFIG, OTAError

# The tables are text, split when the check runs: every name written as code would be interned
# on the heap for good (every cloud's keys, not only the configured one's), a name in a string
# is not. A field is name:type[:default], the type one letter of _TYPES: s string, i integer,
# b boolean (default 0 or 1), d object, c one of the strings that follow (name:c:a:b), and for
# ids that consoles show as numbers, n (an integer, or its digits as a string: kept as an
# integer) and t (a string, or an integer: kept as a string); an upper case type marks a
# section's required key. A top-level key without a default is optional.
_TOP = const(
    "cloud:s server:s ca:s allow_http:b:0 allow_downgrade:b:0 version:s poll_s:i:3600"
    " chunk:i progress_step:i:10 window:i:65536 retries:i:5 deadline_s:i:60"
    " journal_blocks:i:16 readback:b:0 health_check:b:1 mcu_max:i:1048576 mcuboot_permanent:b"
    " wifi:d onenet:d sagoo:d aliyun:d mxchip:d"
)
# chunk: the board profile's by default; deadline_s: the longest one HTTP request may take;
# mcu_max: the largest image accepted for an attached MCU (bytes, on the file system).
# mcuboot_permanent: on an MCUboot board, ask for a permanent swap instead of a test swap.
# onenet: device_id for the legacy API, device_name for the fuse API; range: Range: bytes=a-b or
# a-b. sagoo: body wrapped in "params" or flat (older servers).
_SECTIONS = const(
    (
        "onenet",
        "product_id:T device_id:t device_name:s key:S res:s method:c:md5:sha1:sha256"
        " token_version:s token_ttl:n manuf:n model:n type:n range:c:bytes:bare",
        "sagoo",
        "device_key:T ak:S sk:S app_id:s module:s body:c:params:flat prefix:s",
        "aliyun",
        "product_key:S device_name:S device_secret:S client_id:s"
        " sign_method:c:hmacsha1:hmacmd5 module:s",
        "mxchip",
        "product_id:T device_id:T token:S mcu_version:s",
        "wifi",
        "ssid:S password:s timeout_s:i",
    )
)
_TYPES = const("sibdcnt")
_NAMES = const(("a string", "an integer", "a boolean", "an object"))


def _fields(table):
    # -> [(name, type index in _TYPES, required, default or None, the rest of the field)]
    out = []
    for field in table.split():
        parts = field.split(":")
        kind = _TYPES.find(parts[1].lower())
        rest = parts[2:]
        default = None
        if rest and kind < 4:  # a default
            default = int(rest[0])
            if kind == 2:
                default = bool(default)
        out.append((parts[0], kind, parts[1].isupper(), default, rest))
    return out


def _check(value, field, prefix):
    """-> value, an id in the form the agent uses (n: int, t: str); OTAError if it is wrong."""
    name, kind, _, _, rest = field
    if kind == 5 and isinstance(value, str) and value.isdigit():
        return int(value)
    if kind > 4:  # an id: an integer, or (n) its digits or (t) any string
        if isinstance(value, int) and not isinstance(value, bool):
            return value if kind == 5 else str(value)
        if kind == 6 and isinstance(value, str):
            return value
        raise OTAError(
            CONFIG,
            "ota.json: %s%s must be an integer or its digits" % (prefix, name)
            if kind == 5
            else "ota.json: %s%s must be a string or an integer" % (prefix, name),
        )
    if kind == 4:  # one of these strings
        if value not in rest:
            raise OTAError(
                CONFIG, "ota.json: %s%s must be one of %s" % (prefix, name, ", ".join(rest))
            )
    elif not isinstance(value, (str, int, bool, dict)[kind]) or (
        kind == 1 and isinstance(value, bool)
    ):
        raise OTAError(CONFIG, "ota.json: %s%s must be %s" % (prefix, name, _NAMES[kind]))
    return value


def _known(value, fields, prefix):
    known = [f[0] for f in fields]
    for key in sorted(value):
        if key not in known:
            raise OTAError(CONFIG, "ota.json: unknown key %s%s" % (prefix, key))


def _section(name, value, table):
    fields = _fields(table)
    prefix = name + "."
    _known(value, fields, prefix)
    for field in fields:
        if field[0] in value:
            value[field[0]] = _check(value[field[0]], field, prefix)
        elif field[2]:
            raise OTAError(CONFIG, "ota.json: %s%s is required" % (prefix, field[0]))


def validate(raw):
    """A checked copy of the configuration, defaults filled in. Raises ConfigError."""
    if not isinstance(raw, dict):
        raise OTAError(CONFIG, "ota.json: must be a JSON object")
    top = _fields(_TOP)
    _known(raw, top, "")
    cfg = {}
    for field in top:
        key, default = field[0], field[3]
        if key in raw:
            cfg[key] = _check(raw[key], field, "")
        elif default is not None:
            cfg[key] = default
    from fota.clouds import table as clouds

    cloud = cfg.get("cloud")
    if cloud is None:
        raise OTAError(CONFIG, "ota.json: cloud is required (one of %s)" % clouds.names())
    row = clouds.entry(cloud)
    server = cfg.get("server")
    if server is None:
        raise OTAError(CONFIG, "ota.json: server is required")
    if server.startswith("http://"):
        if not cfg["allow_http"]:
            raise OTAError(CONFIG, "ota.json: server is plain http: set allow_http to true")
    elif not server.startswith("https://"):
        raise OTAError(CONFIG, "ota.json: server must be an http:// or https:// URL")
    elif "ca" not in cfg:
        raise OTAError(CONFIG, "ota.json: server is https: set ca to its CA certificate (DER)")
    from fota.transport.url import split

    try:
        split(server)  # a host, a port that is a number
    except OTAError as exc:
        raise OTAError(CONFIG, "ota.json: server: " + exc.message) from None
    for key in ("poll_s", "progress_step", "window"):
        if cfg[key] <= 0:
            raise OTAError(CONFIG, "ota.json: %s must be positive" % key)
    if not 1 <= cfg["deadline_s"] <= 86400:  # within what ticks_add() takes on every port
        raise OTAError(CONFIG, "ota.json: deadline_s must be 1..86400")
    if cfg["progress_step"] > 100:
        raise OTAError(CONFIG, "ota.json: progress_step must be 1..100")
    if "chunk" in cfg and not 256 <= cfg["chunk"] <= 65536:
        raise OTAError(CONFIG, "ota.json: chunk must be 256..65536 bytes")
    for i in range(0, len(_SECTIONS), 2):
        if _SECTIONS[i] in cfg:
            _section(_SECTIONS[i], cfg[_SECTIONS[i]], _SECTIONS[i + 1])
    section = row[3]
    cfg["cloud_row"] = row  # the module, class and section the other phases load
    if section not in cfg:
        raise OTAError(CONFIG, "ota.json: cloud %s needs the %s section" % (cloud, section))
    if cloud == "onenet" and "device_id" not in cfg[section]:
        raise OTAError(CONFIG, "ota.json: onenet.device_id is required for cloud onenet")
    if cloud == "onenet-fuse" and "device_name" not in cfg[section]:
        raise OTAError(CONFIG, "ota.json: onenet.device_name is required for cloud onenet-fuse")
    if section == "onenet":  # decoded leniently by some ports: an empty key signs nothing
        import binascii

        key = cfg[section]["key"]
        try:
            ok = binascii.b2a_base64(binascii.a2b_base64(key)).strip() == key.encode()
        except ValueError:
            ok = False
        if not ok or not key:
            raise OTAError(CONFIG, "ota.json: onenet.key must be the base64 key of the console")
    return cfg


def ca(path):
    """Raises OTAError (config) unless the file at `path` can be read and starts like a DER
    certificate (an ASN.1 SEQUENCE, 0x30; a PEM file starts with "-----")."""
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError:
        raise OTAError(CONFIG, "ota.json: ca: cannot read %s" % path) from None
    if head != b"0":
        raise OTAError(CONFIG, "ota.json: ca: %s is not a DER certificate (PEM?)" % path)


def load(path):
    """Read and validate the file, and the CA file it names. Raises OTAError (config) naming the
    problem."""
    import json

    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise OTAError(CONFIG, "ota.json: cannot read %s" % path) from None
    try:
        # some ports' json (1.25 and older) close the open containers of a truncated text
        # instead of failing: a file cut short must not pass as a shorter config
        if not text.rstrip().endswith("}"):
            raise ValueError
        raw = json.loads(text)
    except ValueError:
        raise OTAError(CONFIG, "ota.json: %s is not valid JSON" % path) from None
    cfg = validate(raw)
    if "ca" in cfg:
        ca(cfg["ca"])
    return cfg
