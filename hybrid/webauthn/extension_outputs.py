"""Reading a phone's unsigned extension outputs: shape checks and decoding, nothing more.

A malformed output is the phone's fault (`ProtocolError`); a blob that does not inflate to its
originalSize is reported as no blob, as Chromium does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fido2.utils import websafe_encode

from hybrid.errors import ProtocolError
from hybrid.webauthn.extension_codec import decompress_blob

logger = logging.getLogger(__name__)

PRF_OUTPUT_LENGTH = 32
_RETRY = "try again; if it keeps happening, use another phone or security key"


def bad_output(what: str) -> ProtocolError:
    return ProtocolError(f"The phone's extension outputs are malformed ({what}): {_RETRY}.")


def output_map(unsigned: Any, name: str) -> Mapping[Any, Any] | None:
    if unsigned is None:
        return None
    if not isinstance(unsigned, Mapping) or not all(isinstance(k, str) for k in unsigned):
        raise bad_output("not a map of extension names")
    value = unsigned.get(name)
    if value is not None and not isinstance(value, Mapping):
        raise bad_output(f"{name} is not a map")
    return value


def prf_results(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise bad_output("prf results are not a map")
    wanted = [n for n in ("first", "second") if n == "first" or value.get(n) is not None]
    outputs = {
        n: v for n in wanted if isinstance(v := value.get(n), bytes) and len(v) == PRF_OUTPUT_LENGTH
    }
    if len(outputs) != len(wanted):
        raise bad_output(f"prf results are not {PRF_OUTPUT_LENGTH} bytes each")
    return {name: websafe_encode(v) for name, v in outputs.items()}


def unsigned_bool(value: Mapping[Any, Any] | None, key: str, what: str) -> bool:
    flag = False if value is None else value.get(key, False)
    if not isinstance(flag, bool):
        raise bad_output(f"{what} is not a boolean")
    return flag


def read_blob(value: Mapping[Any, Any]) -> str | None:
    blob, size = value.get("blob"), value.get("originalSize")
    if not isinstance(blob, bytes) or not isinstance(size, int) or isinstance(size, bool):
        raise bad_output("largeBlob needs 'blob' bytes and an 'originalSize'")
    data = decompress_blob(blob, size)
    if data is None:  # Chromium reports no blob when it does not inflate to originalSize
        logger.warning("the phone's large blob does not inflate to its originalSize")
        return None
    return websafe_encode(data)
