"""Write the certificate and key of a Dask cluster on TLS (docs/cluster.md#tls): one
self-signed certificate, its own authority, that the scheduler, the workers and the grader
all present, so that a process without these files cannot reach any of them.

    .venv/bin/python tools/tls_files.py FOLDER

writes FOLDER/ca.pem, FOLDER/cert.pem and FOLDER/key.pem, readable by this user alone (the
folder is made so, the key never exists with another mode), valid for a year. Copy them to
every machine of the cluster the same way (scp -p, into a folder of mode 700).
"""

import argparse
import os
import sys
from pathlib import Path

from distributed.security import Security

NAMES = ("ca.pem", "cert.pem", "key.pem")


def write_tls_files(folder):
    """A new certificate and key in `folder` (made, mode 700, if missing); {name: path}."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials = Security.temporary()  # Dask's own: a 2048-bit RSA key, a year's certificate
    texts = (credentials.tls_ca_file, credentials.tls_client_cert, credentials.tls_client_key)
    paths = {}
    for name, text in zip(NAMES, texts, strict=True):
        path = folder / name
        path.unlink(missing_ok=True)  # a file of another mode is not written into
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        paths[name] = path
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="where to write ca.pem, cert.pem and key.pem")
    args = parser.parse_args(argv)
    for path in write_tls_files(args.folder).values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
