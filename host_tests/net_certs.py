"""The network tests' certificates: a test CA, an unrelated CA and a server certificate for
localhost signed by the test CA; for the failures, one for localhost signed by the test CA that
expired yesterday, and one for localhost that signs itself (netfixtures.py makes them once per
run)."""

import datetime


def make_pki(files, pki):
    """ca.der + wrong-ca.der in files/; the server's chain and key (PEM) in pki/."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def ca(text):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(text))
            .issuer_name(name(text))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca_cert = ca("fota test CA")
    _, wrong_cert = ca("fota wrong CA")

    def leaf(key, issuer, issuer_key, not_after):
        return (
            x509.CertificateBuilder()
            .subject_name(name("localhost"))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=2))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256())
        )

    der = serialization.Encoding.DER
    pem = serialization.Encoding.PEM
    (files / "ca.der").write_bytes(ca_cert.public_bytes(der))
    (files / "wrong-ca.der").write_bytes(wrong_cert.public_bytes(der))
    month = now + datetime.timedelta(days=30)
    yesterday = now - datetime.timedelta(days=1)
    self_key = ec.generate_private_key(ec.SECP256R1())
    for stem, cert_key, issuer, issuer_key, not_after, chain in (
        ("server", None, ca_cert.subject, ca_key, month, True),
        ("expired", None, ca_cert.subject, ca_key, yesterday, True),
        ("self-signed", self_key, name("localhost"), self_key, month, False),
    ):
        key = cert_key or ec.generate_private_key(ec.SECP256R1())
        cert = leaf(key, issuer, issuer_key, not_after)
        extra = ca_cert.public_bytes(pem) if chain else b""
        (pki / (stem + ".pem")).write_bytes(cert.public_bytes(pem) + extra)
        (pki / (stem + ".key")).write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
