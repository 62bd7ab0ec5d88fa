"""The nginx servers of the network tests: the test files over http and https, with the
redirects between the two and nginx's own counters, and https with an expired and with a
self-signed certificate (netfixtures.py runs them)."""


def nginx_servers(files, pki):
    def servers(ports):
        plain, tls, expired, self_signed = ports
        return f"""\
    server {{
        listen 127.0.0.1:{plain};
        root {files};
        location / {{ }}
        location = /nginx-status {{ stub_status; }}
        location ~ ^/to-tls/(.*)$ {{ return 302 https://localhost:{tls}/$1; }}
    }}
    server {{
        listen 127.0.0.1:{tls} ssl;
        server_name localhost;
        ssl_certificate {pki}/server.pem;
        ssl_certificate_key {pki}/server.key;
        root {files};
        location / {{ }}
        location ~ ^/to-plain/(.*)$ {{ return 302 http://127.0.0.1:{plain}/$1; }}
    }}
    server {{
        listen 127.0.0.1:{expired} ssl;
        ssl_certificate {pki}/expired.pem;
        ssl_certificate_key {pki}/expired.key;
        root {files};
    }}
    server {{
        listen 127.0.0.1:{self_signed} ssl;
        ssl_certificate {pki}/self-signed.pem;
        ssl_certificate_key {pki}/self-signed.key;
        root {files};
    }}"""

    return servers
