"""Local emulators of the clouds' device OTA APIs: for tests, `make demo`, and real boards.

usage: python tools/emulator.py CLOUD --image FILE --version VER [--host 127.0.0.1] [--port 8080]
                                [--advertise HOST] [--tls-cert PEM --tls-key PEM] [--any-version]
                                [CREDENTIALS] [TASK OPTIONS]

CLOUD is one of
  onenet        OneNET legacy OTA (ota.heclouds.com): /ota/device/version, /ota/south/check,
                /ota/south/download/{token}[/check], /ota/south/device/download/{token}/progress,
                /ota/south/report, /ota/south/tasking
  onenet-fuse   OneNET new-platform OTA: /fuse-ota/{pro_id}/{dev_name}/version, /check,
                /{tid}/check, /{tid}/download, /{tid}/status
  sagoo         Sagoo IoT: [/base-api]/openapi/v1/ota/get_ota_info and write_ota_info; the
                image itself at /sagoo-files/{strategy}/{name}
  mxchip        MXCHIP FOG: device GET /api/v1/ota/device/ and PUT /api/v1/ota/version/;
                management GET /oss_token/ota/, POST/GET /api/v1/ota/{product_id}/files/,
                GET/PUT/DELETE /api/v1/ota/{product_id}/files/{id}; files at /files/{key}
                (POST /files/: the upload the oss token signs). FILE is the wifi file
                (ota_type 1); --mcu-image/--mcu-version publish an mcu file (ota_type 0)
  aliyun        Aliyun IoT HTTP channel: POST /auth, POST /topic/{topic} with the OTA
                topics /ota/device/inform|progress/{pk}/{dn} and
                /sys/{pk}/{dn}/thing/ota/firmware/get; the job's file at /ota-files/{job}/{name}
                (a signed URL that expires)

FILE is served as the pending update with version VER. An ESP32 app image whose app descriptor,
or an MCUboot image whose header, names another version is refused (--any-version serves it
anyway, to test a device's own check); make one with
`.venv/bin/python tools/appimage.py --version VER --size BYTES -o FILE` (ESP32) or
`.venv/bin/python tools/mcuimage.py build --version VER --size BYTES FILE` (MCUboot).

It listens on --host (127.0.0.1; 0.0.0.0 for a board on the network) at --port (8080; 0 picks
a free port) and prints one JSON line on stdout: {"cloud", "url", "control", "config", ...the
credentials it accepts}. "url" is what a device connects to: on --advertise HOST, by default
the listening address, or for 0.0.0.0 this machine's address on its outbound network. "config"
is a complete /ota.json for a device of this emulator, its credentials under the config's own
key names (product_id, device_id, key ...). Then it prints one JSON line per device request as
it ends, {"request": "GET /path?query", "endpoint", "status", "range", "fault"}, and serves
until SIGINT or SIGTERM. Errors: `emulator: message` on stderr, exit status 1.
`python tools/emulator.py CLOUD --help` lists the credential options.

Default credentials (so that `make demo` needs no options; the published samples where the
clouds' documents give one)
  onenet, onenet-fuse  --product-id 123123
                       --key KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw= (product access key)
                       --device-id 522747162  --device-name mydev
                       --device-key iLItnGVvZyXkvDxWDTDnG1x4qENBpu6/gbQ7LDx+XAo=
                       tokens: res products/{pid} (product key) or
                       products/{pid}/devices/{name} (device key, onenet.key for onenet-fuse);
                       version 2018-10-31 (onenet) or 2018-10-31 / 2022-05-01 (onenet-fuse)
  sagoo                --ak iotak  --sk iotsk20200907  --app-id fota  --device-key dev001
                       module "default", batch (strategy) 1, signMethod "MD5"
  mxchip               --token d79be1d657d9a8b45f6f903620e84b06cbf225e0 (one token for the
                       device and the management API)
                       --product-id test  --device-id mxdev001; published files are online
  aliyun               --product-key ZG1EvTEa7NN  --device-name NlwaSPXsCpTQuh8FxBGH
                       --device-secret secret; tokens live 48 h; module "default",
                       signMethod "Md5"
In Python (tools/ on sys.path): `emu.start(cloud, image=, version=, tls=(cert, key),
**credentials_or_options) -> Server` with .url, .control, .info() and .stop().

Control API (JSON, no auth, never recorded; errors are 400 {"error": message})
  GET  /_emu             {"cloud", "endpoints": [fault targets], ...credentials}
  GET  /_emu/state       {"cloud", "image": {path, name, version, size, md5, sha256} | null,
                          "options", "clock_offset_s", "now", "faults": [...], "requests": n,
                          onenet*: "task": {state, type, package_type, target, size, md5,
                          token, token_expires, token_expired, old_tokens, tid, last_step,
                          last_result, steps: [[code, errno]...]} | null,
                          "device": {f_version?, s_version?};
                          sagoo: "batch": {state, strategy, module, target, sign_method,
                          sign, size, last_step, steps} | null, "reported": {module: version};
                          mxchip: "mcu_image": {...} | null, "files": [file records as
                          stored, deleted ones too; this server's file_url as "/files/..."],
                          "jobs": {file id: {state
                          published|offered|downloading|succeeded, downloads}}, "device":
                          {device_id, wifi_version, mcu_version}, "checks": [[wifi, mcu]...],
                          "reports": [version PUT bodies], "uploads": [keys under /files/];
                          aliyun: "job": {id, state, module, target, sign_method, sign,
                          size, last_step, steps: [[step, desc]...], downloads} | null,
                          "device": {module: version}, "tokens": [{token, client_id, issued,
                          expires, expired}], "ignored": [[endpoint, why]...] (OTA messages
                          the OTA service could not use), "push": the job as the MQTT push
                          /ota/device/upgrade would carry it ({"code": "1000", "data", "id",
                          "message"}; its url on the host of the last /auth or publish;
                          null before one, or when the job is not pending or upgrading)}
  GET  /_emu/log[?since=N]  [{"method", "path", "query": {}, "headers": {lowercase: value},
                          "json": body | null, "body_len", "status", "answer": JSON | null,
                          "range": header | null, "endpoint", "fault": kind | null}, ...]
  POST /_emu/reset       {"image": "/abs/path" | null, "version": "2.0.0", ...options}
                         -> the new state. Clears the log, faults, clock offset and task; an
                         absent image/version keeps the current one; null means "no update";
                         "any_version": true serves an app image whose descriptor names
                         another version (refused otherwise, as at the start).
                         Options not given take the start defaults:
                           onenet*: type 1|2 (FOTA f_version | SOTA s_version), package_type
                             1 full|2 diff, diff_from (base version of a diff), state (the
                             task's first state), f_version, s_version (the device's),
                             product_token (accept res products/{pid}), token_lifetime_s
                             (172800), token_versions; onenet only: manuf (101), model
                             (10101), signal, power, retry, interval (check data)
                           sagoo: module, strategy, sign_method, wrapped_only,
                             flat_body_only, max_skew_s (null: no window),
                             omit_default_module, size (add data.size), state
                           mxchip: mcu_image (a path or null), mcu_version, file_status (0
                             test, 1 online (default), 2 invalid), customize, and
                             device_wifi_version, device_mcu_version (the device's versions
                             as the platform knows them), oss_lifetime_s (300). The image is
                             published as file 1 (wifi), the mcu_image as file 2
                             (/files/ota/wifi|mcu/{name}); uploads and API files are cleared
                           aliyun: module ("default"), sign_method (Md5|SHA256),
                             ext_data ({}), state (pending), device_version,
                             token_lifetime_s (172800), max_skew_s (900), sign_methods
                             (["hmacmd5", "hmacsha1"]; hmacsha256 may be added),
                             url_lifetime_s (86400), rate_limit (null: none; else /auth and
                             publishes per 60 s), data_as_text (false: info.data an object)
  POST /_emu/fault       {"kind", "on", "after": K, "status": 503, "times": 1, "code": 1}
                         -> {"faults": [queued]}. The next `times` requests to endpoint `on`
                         ("*" = any; default "check" for wrong_digest and code, else
                         "download") get: drop (headers with the full Content-Length, K body
                         bytes, close), stall (K bytes, then silence until the client goes
                         away), silent (no answer at all), status (HTTP `status`, request not
                         processed), code (the cloud's JSON error with number `code`),
                         wrong_digest (check answer with a wrong md5/sign), error_body
                         (onenet: the close-delimited one-byte body `code`, "1" not found,
                         "2" size mismatch, "3" invalid token; onenet-fuse: HTTP 200 with
                         Ota-Errno `code`). Endpoints: onenet version, check, token_check,
                         download, progress, report, tasking; onenet-fuse version, check,
                         task_check, download, progress (= status); sagoo check (=
                         get_ota_info), progress (= write_ota_info), download; mxchip check,
                         version, download, manage (oss token and files API), upload; aliyun
                         auth, inform, progress, check (= firmware/get), publish (any other
                         topic), download. mxchip and aliyun have no error_body; aliyun's
                         rate limit is {"kind": "code", "code": 40000} (its documented
                         message, "request too many", as for every documented code).
  POST /_emu/clock       {"offset_s": N} -> {"offset_s", "now"}: shifts the emulator's clock
  POST /_emu/task        {"state": name} -> the state: sets the task's (batch's, job's) state,
                         e.g. "cancelled" or "paused" in the middle of a download (mxchip has
                         no task: publish, PUT or delete files instead)

Choices where the sources leave things open (details in each module's header)
  onenet       answers are HTTP 200 whatever the errno; auth failure or another dev_id: errno
               1; the download also moves pending -> downloading; task tokens live 2 days from
               the check that issued them (a later check issues a new one, old ones get errno
               12); an unknown/expired/finished download token gets the one-byte body "3";
               any well-formed Range is answered 206 (even one covering the whole file), a
               missing or malformed one 200; `bytes=-0` counts as malformed.
  onenet-fuse  the legacy errno numbers as codes (1 auth/device, 2 params, 4 unknown tid, 11
               no task, without data.tid, 17, 20 "task finish", 22, 27); the download or a step
               0..100 in pending starts the task; refused downloads are HTTP 200 with Ota-Errno
               (1 device, 2 tid, 5 task over, 6 auth) and a JSON body.
  sagoo        auth failures 61 (GoFrame CodeNotAuthorized), missing parameter 54, invalid 53,
               unknown deviceKey 65, a report to a finished batch 300, all HTTP 200; no update
               is {"code":0,"message":"","data":null}; the batch completes when get_ota_info
               reports the target version; step must be a string "1".."100" or "-1".."-4".
  mxchip       no or a malformed Authorization header: HTTP 401, meta code 27054; a wrong
               token: HTTP 401, meta code 1201 (FOG v2's codes); parameter errors HTTP 400 with
               meta code 10000 (also unknown product, device or file id for GET/PUT); DELETE
               10500 unknown id, 10501 not in status 0 (test); the misspelled
               `/api/v1/ota/devce/` of MXCHIP's own examples is served too; version unique per
               product and ota_type; API-created files start in status 0 (test), PUT also takes
               status and customize; test and online
               files are both offered (the check has no MAC: mac_range is stored only); DELETE
               is soft (is_delete); the newest live, non-invalid file per ota_type is offered
               when its version differs from the device's; a version PUT marks files whose
               version it reports "succeeded" (the API has no failure report); a file_url
               starting with "/" is this server's; the oss token signs an OSS PostObject form
               to /files/ whose answer, with the callback field, is the callback's JSON
               {file_url, md5, size}.
  aliyun       always HTTP 200; an OTA message the OTA service cannot use (bad JSON, a step
               outside "1".."100"/"-1".."-4", no job, another module) is still a successful
               publish, listed in "ignored"; an old timestamp and a wrong productKey,
               deviceName or sign are 20000, a malformed parameter 10001; /auth cut short by
               its Content-Length is no JSON (10001), bytes past it are no HTTP request
               (aiohttp answers 400, unrecorded), a longer Content-Length is waited for;
               every /auth issues a new token, earlier ones stay valid until their end, reset
               forgets them; the job goes pending -> upgrading at the first progress, failed
               at "-1".."-4", succeeded ONLY at an inform of the target version ("100" alone
               is not success); info.data is an object ({} when there is nothing to do);
               the file URL is signed and expires url_lifetime_s after the firmware get (403
               with an OSS error document); a topic must name this device (else 30001).
"""

import argparse
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli  # noqa: E402
import emu  # noqa: E402

PORT = 8080


def _parser():
    intro = __doc__[__doc__.index("CLOUD is one of") : __doc__.index("Default credentials")]
    parser = cli.Parser(
        prog="emulator",
        description="Serve a cloud's device OTA API locally.\n\n" + intro.rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cloud", metavar="CLOUD", required=True)
    for cloud in emu.CLOUDS:
        cls = emu.emulator_class(cloud)
        p = sub.add_parser(cloud, help="%s emulator" % cloud)
        p.add_argument("--image", required=True, metavar="FILE", help="the update image")
        p.add_argument("--version", required=True, metavar="VER", help="its version")
        p.add_argument(
            "--host",
            default="127.0.0.1",
            help="address to listen on (default 127.0.0.1; 0.0.0.0 for a board on the network)",
        )
        p.add_argument(
            "--port", type=int, default=PORT, help="port (default %d; 0: any free port)" % PORT
        )
        p.add_argument(
            "--advertise",
            "--url-host",
            dest="url_host",
            metavar="HOST",
            help="host in the printed URLs, the one a device connects to (default: the --host "
            "address; for 0.0.0.0 this machine's address on its outbound network)",
        )
        p.add_argument("--tls-cert", metavar="PEM", help="serve https with this certificate")
        p.add_argument("--tls-key", metavar="PEM", help="... and this private key")
        p.add_argument(
            "--any-version",
            action="store_true",
            help="serve FILE even when its app descriptor names another version than VER",
        )
        group = p.add_argument_group("credentials")
        for name, default, text in cls.CREDENTIALS:
            group.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                default=default,
                help="%s (default %s)" % (text, default),
            )
        group = p.add_argument_group("task options (also settable by POST /_emu/reset)")
        for name, kind, text in cls.CLI_OPTIONS:
            group.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=text)
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    cls = emu.emulator_class(args.cloud)
    options = {name: getattr(args, name) for name, _, _ in cls.CREDENTIALS}
    for name, _, _ in cls.CLI_OPTIONS:
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    # The server thread inherits a mask with these blocked, so only sigwait() below gets them.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        server = emu.start(
            args.cloud,
            image=args.image,
            version=args.version,
            tls=tls,
            host=args.host,
            port=args.port,
            url_host=args.url_host,
            any_version=args.any_version,
            **options,
        )
    except emu.EmuError as exc:
        raise cli.ToolError(str(exc)) from None
    try:
        print(json.dumps(server.info()), flush=True)
        server.emulator.on_request = _print_request
        signal.sigwait(stop_signals)
    finally:
        server.stop()
    return 0


def request_line(record):
    """The line printed for one device request (a record of the emulator's log)."""
    target = record["path"]
    if record["query"]:
        target += "?" + "&".join("%s=%s" % kv for kv in record["query"].items())
    line = {"request": "%s %s" % (record["method"], target), "endpoint": record["endpoint"]}
    for key in ("status", "range", "fault"):
        line[key] = record[key]
    return json.dumps(line)


def _print_request(record):
    print(request_line(record), flush=True)


if __name__ == "__main__":
    sys.exit(cli.run("emulator", main))
