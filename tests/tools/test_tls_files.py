"""tools/tls_files.py: the certificate and key of a cluster on TLS, its user's alone."""

import ssl
import stat

from tools import tls_files


def test_the_files_are_a_certificate_and_its_key_readable_by_their_user_alone(tmp_path):
    folder = tmp_path / "tls"
    paths = tls_files.write_tls_files(folder)
    assert sorted(paths) == sorted(tls_files.NAMES)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in paths.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    context = ssl.create_default_context(cafile=paths["ca.pem"])
    context.load_cert_chain(paths["cert.pem"], paths["key.pem"])  # the key is the cert's
    assert "PRIVATE KEY" in paths["key.pem"].read_text()


def test_written_again_they_are_new_and_still_private(tmp_path, capsys):
    first = tls_files.write_tls_files(tmp_path)["key.pem"].read_text()
    (tmp_path / "key.pem").chmod(0o644)  # a key someone opened up is replaced, not reused
    assert tls_files.main([str(tmp_path)]) == 0
    assert (tmp_path / "key.pem").read_text() != first
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600
    assert str(tmp_path / "ca.pem") in capsys.readouterr().out
