# /ota.json: load and validate the device configuration.
#
# Strict on purpose: an unknown key or a wrong type is a ConfigError that names the key (a typo
# in "poll_s" must not silently poll every hour). Only the chosen cloud's section is required;
# the defaults below fill the rest. Runs once per boot; the tables are tuples to stay small.
# Every mistake a config can hold is caught here, at start, where it stops the agent with one
# error event: a value a cloud would refuse later (a "method" it cannot sign with), https
# without a CA, a CA file that is missing or not DER. The host tools (deploy, fsimage) run this
# same module under CPython before anything is written.

from fota.core.errors import CONFIG, OTAError

_S, _I, _B, _D = "a string", "an integer", "a boolean", "an object"

# top level: (key, type, default); a default of None means optional without a value
_TOP = (
    ("cloud", _S, None),
    ("server", _S, None),
    ("ca", _S, None),
    ("allow_http", _B, False),
    ("allow_downgrade", _B, False),
    ("version", _S, None),
    ("poll_s", _I, 3600),
    ("chunk", _I, None),  # default: the board profile's chunk
    ("progress_step", _I, 10),
    ("window", _I, 65536),
    ("retries", _I, 5),
    ("deadline_s", _I, 60),  # longest one HTTP request may take (head and body)
    ("journal_blocks", _I, 16),
    ("readback", _B, False),
    ("health_check", _B, True),
    ("mcu_max", _I, 1048576),  # largest image accepted for an attached MCU (bytes, on the fs)
    ("wifi", _D, None),
    ("onenet", _D, None),
    ("sagoo", _D, None),
    ("aliyun", _D, None),
    ("mxchip", _D, None),
)
# sections: key -> ((key, type, required), ...)
_SECTIONS = {
    "onenet": (
        ("product_id", _S, True),
        ("device_id", _S, False),  # legacy API only
        ("device_name", _S, False),  # fuse API and device-level tokens
        ("key", _S, True),
        ("res", _S, False),
        ("method", ("md5", "sha1", "sha256"), False),
        ("token_version", _S, False),
        ("token_ttl", _I, False),
        ("manuf", _I, False),
        ("model", _I, False),
        ("type", _I, False),
        ("range", ("bytes", "bare"), False),  # Range: bytes=a-b, or a-b
    ),
    "sagoo": (
        ("device_key", _S, True),
        ("ak", _S, True),
        ("sk", _S, True),
        ("app_id", _S, False),
        ("module", _S, False),
        ("body", ("params", "flat"), False),  # wrapped in "params", or flat (older servers)
        ("prefix", _S, False),
    ),
    "aliyun": (
        ("product_key", _S, True),
        ("device_name", _S, True),
        ("device_secret", _S, True),
        ("client_id", _S, False),
        ("sign_method", ("hmacsha1", "hmacmd5"), False),
        ("module", _S, False),
    ),
    "mxchip": (
        ("product_id", _S, True),
        ("device_id", _S, True),
        ("token", _S, True),
        ("mcu_version", _S, False),
    ),
    "wifi": (
        ("ssid", _S, True),
        ("password", _S, False),
        ("timeout_s", _I, False),
    ),
}


def _type_ok(value, kind):
    if kind == _S:
        return isinstance(value, str)
    if kind == _B:
        return isinstance(value, bool)
    if kind == _I:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, dict)


def _check(value, kind, name):
    if type(kind) is tuple:  # one of these strings
        if value not in kind:
            raise OTAError(CONFIG, "ota.json: %s must be one of %s" % (name, ", ".join(kind)))
    elif not _type_ok(value, kind):
        raise OTAError(CONFIG, "ota.json: %s must be %s" % (name, kind))


def _section(name, value):
    fields = _SECTIONS[name]
    known = [f[0] for f in fields]
    for key in sorted(value):
        if key not in known:
            raise OTAError(CONFIG, "ota.json: unknown key %s.%s" % (name, key))
    for key, kind, required in fields:
        if key in value:
            _check(value[key], kind, name + "." + key)
        elif required:
            raise OTAError(CONFIG, "ota.json: %s.%s is required" % (name, key))


def validate(raw):
    """A checked copy of the configuration, defaults filled in. Raises ConfigError."""
    if not isinstance(raw, dict):
        raise OTAError(CONFIG, "ota.json: must be a JSON object")
    known = [f[0] for f in _TOP]
    for key in sorted(raw):
        if key not in known:
            raise OTAError(CONFIG, "ota.json: unknown key %s" % key)
    cfg = {}
    for key, kind, default in _TOP:
        if key in raw:
            _check(raw[key], kind, key)
            cfg[key] = raw[key]
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
    for key in ("poll_s", "progress_step", "window"):
        if cfg[key] <= 0:
            raise OTAError(CONFIG, "ota.json: %s must be positive" % key)
    if not 1 <= cfg["deadline_s"] <= 86400:  # within what ticks_add() takes on every port
        raise OTAError(CONFIG, "ota.json: deadline_s must be 1..86400")
    if cfg["progress_step"] > 100:
        raise OTAError(CONFIG, "ota.json: progress_step must be 1..100")
    if "chunk" in cfg and not 256 <= cfg["chunk"] <= 65536:
        raise OTAError(CONFIG, "ota.json: chunk must be 256..65536 bytes")
    for name in _SECTIONS:
        if name in cfg:
            _section(name, cfg[name])
    section = row[3]
    cfg["cloud_row"] = row  # the module, class and section the other phases load
    if section not in cfg:
        raise OTAError(CONFIG, "ota.json: cloud %s needs the %s section" % (cloud, section))
    if cloud == "onenet" and "device_id" not in cfg[section]:
        raise OTAError(CONFIG, "ota.json: onenet.device_id is required for cloud onenet")
    if cloud == "onenet-fuse" and "device_name" not in cfg[section]:
        raise OTAError(CONFIG, "ota.json: onenet.device_name is required for cloud onenet-fuse")
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


def load(path="/ota.json"):
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
