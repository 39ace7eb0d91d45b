"""The sha256 of a file, read in chunks: what manifests record and boards check."""

import hashlib

_HASH_CHUNK = 1 << 20


def file_sha256(path):
    """The hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
