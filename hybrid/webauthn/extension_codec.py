"""The byte-level encodings of WebAuthn extensions, shared by the desktop and the phone.

PRF inputs become salts (`SHA-256("WebAuthn PRF" || 0x00 || input)`, WebAuthn L3 §10.1.4);
large blobs travel raw-DEFLATE compressed (RFC 1951) with their original size.
"""

from __future__ import annotations

import hashlib
import zlib

PRF_SALT_PREFIX = b"WebAuthn PRF\x00"
#: Largest inflated blob either side accepts; bounds memory for a hostile originalSize.
MAX_BLOB_ORIGINAL_SIZE = 1 << 20


def prf_salt(value: bytes) -> bytes:
    """The 32-byte salt a WebAuthn PRF input becomes."""
    return hashlib.sha256(PRF_SALT_PREFIX + value).digest()


def compress_blob(data: bytes) -> bytes:
    """Raw DEFLATE (RFC 1951, no zlib header), the largeBlob wire form."""
    compressor = zlib.compressobj(level=9, wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def decompress_blob(data: bytes, original_size: int) -> bytes | None:
    """Inflate a raw-DEFLATE blob; None unless it is one complete stream of `original_size`."""
    if not 0 <= original_size <= MAX_BLOB_ORIGINAL_SIZE:
        return None
    inflater = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, original_size + 1)
    except zlib.error:
        return None
    complete = inflater.eof and not inflater.unconsumed_tail and not inflater.unused_data
    return out if complete and len(out) == original_size else None
