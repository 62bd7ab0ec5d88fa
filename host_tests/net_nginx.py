"""The nginx servers of the network tests: the test files over http and https, with the
redirects between the two and nginx's own counters (netfixtures.py runs them)."""


def nginx_servers(files, pki):
    def servers(ports):
        plain, tls = ports
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
    }}"""

    return servers
