# /ota.json validation: every error names the key; defaults fill the rest; secrets are redacted.

from dual import fails, rmtree, tmpdir

from fota.app import config, events
from fota.core.errors import CONFIG

RUN_ON_MICROPYTHON = True

ONENET = {
    "cloud": "onenet",
    "server": "https://ota.heclouds.com",
    "ca": "/certs/ca.der",
    "onenet": {"product_id": "123123", "device_id": "522747162", "key": "a2V5"},
}


def _with(**changes):
    cfg = dict(ONENET)
    cfg["onenet"] = dict(ONENET["onenet"])
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def _error(raw):
    return fails(CONFIG, config.validate, raw).message


def test_valid_config_gets_defaults():
    cfg = config.validate(ONENET)
    assert cfg["poll_s"] == 3600 and cfg["progress_step"] == 10
    assert cfg["allow_http"] is False and cfg["allow_downgrade"] is False
    assert "chunk" not in cfg  # the board profile decides
    assert cfg["onenet"]["device_id"] == "522747162"


def test_unknown_keys_are_errors_that_name_them():
    assert _error(_with(poll=60)) == "ota.json: unknown key poll"
    raw = _with()
    raw["onenet"]["devid"] = "1"
    assert _error(raw) == "ota.json: unknown key onenet.devid"


def test_wrong_types_name_the_key():
    assert _error(_with(poll_s="60")) == "ota.json: poll_s must be an integer"
    assert "allow_http" in _error(_with(allow_http=1))
    raw = _with()
    raw["onenet"]["type"] = "one"
    assert "onenet.type must be an integer or its digits" in _error(raw)
    raw["onenet"]["type"] = True
    assert "onenet.type" in _error(raw)
    raw = _with()
    raw["onenet"]["device_id"] = 5.5
    assert "onenet.device_id must be a string or an integer" in _error(raw)
    assert "onenet must be an object" in _error(_with(onenet=[1]))


def test_numeric_ids_as_numbers_or_digit_strings():
    # consoles show these as numbers; users copy them either way
    raw = _with()
    raw["onenet"].update(product_id=123123, device_id=522747162, manuf="101", model=10101)
    raw["onenet"]["type"] = "1"
    section = config.validate(raw)["onenet"]
    assert section["product_id"] == "123123" and section["device_id"] == "522747162"
    assert section["manuf"] == 101 and section["model"] == 10101 and section["type"] == 1
    mx = {"cloud": "mxchip", "server": "http://h", "allow_http": True,
          "mxchip": {"product_id": 7, "device_id": 8, "token": "t"}}  # fmt: skip
    assert config.validate(mx)["mxchip"]["device_id"] == "8"


def test_required_values():
    assert "cloud is required" in _error(_with(cloud=None))
    assert "server is required" in _error(_with(server=None))
    assert "cloud must be one of" in _error(_with(cloud="aws"))
    assert "needs the onenet section" in _error(_with(onenet=None))
    raw = _with()
    del raw["onenet"]["key"]
    assert _error(raw) == "ota.json: onenet.key is required"
    raw = _with(cloud="onenet-fuse")
    assert "onenet.device_name" in _error(raw)
    assert "sagoo.ak is required" in _error(
        {
            "cloud": "sagoo",
            "server": "https://x",
            "ca": "c",
            "sagoo": {"device_key": "d", "sk": "s"},
        }
    )


def test_values_out_of_range_and_plain_http():
    assert "allow_http" in _error(_with(server="http://10.0.0.2:8080"))
    assert config.validate(_with(server="http://10.0.0.2", allow_http=True))["allow_http"]
    assert "server must be" in _error(_with(server="ftp://x"))
    assert "chunk" in _error(_with(chunk=100))
    assert "progress_step" in _error(_with(progress_step=0))
    assert "progress_step" in _error(_with(progress_step=101))
    assert "must be a JSON object" in _error([1, 2])


def test_request_deadline():
    assert config.validate(ONENET)["deadline_s"] == 60
    assert config.validate(_with(deadline_s=5))["deadline_s"] == 5
    assert _error(_with(deadline_s=0)) == "ota.json: deadline_s must be 1..86400"
    assert "deadline_s" in _error(_with(deadline_s=86401))
    assert _error(_with(deadline_s=1.5)) == "ota.json: deadline_s must be an integer"


def test_load_reads_the_file_and_reports_bad_json():
    tmp = tmpdir()
    try:
        path = tmp + "/ota.json"
        with open(path, "w") as f:
            f.write('{"cloud": "onenet",')
        assert "not valid JSON" in fails(CONFIG, config.load, path).message
        assert "cannot read" in fails(CONFIG, config.load, tmp + "/none.json").message
        import json

        with open(tmp + "/ca.der", "wb") as f:
            f.write(b"\x30\x82\x01\x0a")
        with open(path, "w") as f:
            json.dump(_with(ca=tmp + "/ca.der"), f)
        assert config.load(path)["cloud"] == "onenet"
    finally:
        rmtree(tmp)


def test_values_a_cloud_would_refuse_later_are_refused_at_start():
    for section, key, good, bad in (
        ("onenet", "method", "sha256", "sha512"),
        ("onenet", "range", "bare", "Bare"),
        ("sagoo", "body", "flat", "wrapped"),
        ("aliyun", "sign_method", "hmacmd5", "hmacsha256"),
    ):
        raw = _with()
        raw["sagoo"] = {"device_key": "d", "ak": "a", "sk": "s"}
        raw["aliyun"] = {"product_key": "p", "device_name": "n", "device_secret": "s"}
        raw[section][key] = good
        config.validate(raw)
        raw[section][key] = bad
        assert _error(raw).startswith("ota.json: %s.%s must be one of " % (section, key))
        assert good in _error(raw)


def test_https_needs_a_ca():
    assert _error(_with(ca=None)) == (
        "ota.json: server is https: set ca to its CA certificate (DER)"
    )
    assert "ca" not in config.validate(_with(ca=None, server="http://x", allow_http=True))


def test_a_ca_file_that_is_missing_unreadable_or_pem_is_a_config_error_at_load():
    import json

    tmp = tmpdir()
    try:
        path = tmp + "/ota.json"
        for name, data, says in (
            ("none.der", None, "cannot read"),
            ("empty.der", b"", "is not a DER certificate"),
            ("ca.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n", "is not a DER certificate"),
        ):
            ca = tmp + "/" + name
            if data is not None:
                with open(ca, "wb") as f:
                    f.write(data)
            with open(path, "w") as f:
                json.dump(_with(ca=ca), f)
            message = fails(CONFIG, config.load, path).message
            assert message.startswith("ota.json: ca: ") and ca in message and says in message
        # a folder where the file should be: cannot be read either
        with open(path, "w") as f:
            json.dump(_with(ca=tmp), f)
        assert "cannot read" in fails(CONFIG, config.load, path).message
    finally:
        rmtree(tmp)


def test_redacted_hides_every_secret():
    cfg = config.validate(_with(wifi={"ssid": "lab", "password": "hunter2"}))
    text = repr(events.redacted(cfg))  # what the agent prints goes through this
    assert "a2V5" not in text and "hunter2" not in text and "lab" in text


def test_a_server_without_a_host_and_a_key_that_is_not_base64_are_refused():
    assert "no host in URL" in _error(_with(server="https://"))
    assert "bad port" in _error(_with(server="https://host:port/"))
    for key in ("not base64!", "abc", ""):
        raw = _with()
        raw["onenet"]["key"] = key
        assert "onenet.key must be the base64" in _error(raw), key
    raw = _with()
    raw["onenet"]["key"] = "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw="
    assert config.validate(raw)["onenet"]["key"] == raw["onenet"]["key"]
