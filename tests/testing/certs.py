"""Certificates for TLS tests, made with the openssl command line (a Debian package that
scripts/install-deps.sh installs): a CA, and certificates it signs."""
import os
import shutil
import subprocess


def _openssl(directory, *args):
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed (scripts/install-deps.sh installs it)"
    subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)


def make_ca(directory, cert="ca.pem", key="ca.key"):
    """A self-signed CA in directory/cert, its key in directory/key. Returns (cert, key) paths."""
    _openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
             cert, "-days", "2", "-subj", "/CN=cropshield-test-ca")
    return os.path.join(directory, cert), os.path.join(directory, key)


def make_certificate(directory, ca, cert, key, common_name, dns_name=None):
    """A certificate for common_name signed by ca (a make_ca result), with dns_name as its only
    subjectAltName when given (then clients check that name). Returns (cert, key) paths."""
    _openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
             f"{cert}.csr", "-subj", f"/CN={common_name}")
    extra = []
    if dns_name:
        with open(os.path.join(directory, f"{cert}.ext"), "w") as f:
            f.write(f"subjectAltName=DNS:{dns_name}\n")
        extra = ["-extfile", f"{cert}.ext"]
    _openssl(directory, "x509", "-req", "-in", f"{cert}.csr", "-CA", ca[0], "-CAkey", ca[1],
             "-CAcreateserial", "-out", cert, "-days", "2", *extra)
    return os.path.join(directory, cert), os.path.join(directory, key)
