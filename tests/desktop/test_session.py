"""Desktop pieces without a phone: getInfo parsing, the fido2 hint cache, linking status."""

from __future__ import annotations

import typing

import cbor2
import fido2.utils
import pytest

from hybrid.desktop import HybridClient
from hybrid.desktop.session import parse_get_info
from hybrid.errors import ProtocolError, ProtocolReason
from hybrid.protocol import QRCode, new_linking_info
from hybrid.status import Stage, Status
from hybrid.webauthn import cache_fido2_type_hints
from tests.conftest import PHONE_GET_INFO, PHONE_INFO


def test_get_info_is_parsed_by_fido2_and_cached() -> None:
    raw = PHONE_GET_INFO
    assert parse_get_info(raw) == PHONE_INFO
    assert parse_get_info(raw) is parse_get_info(raw)


@pytest.mark.parametrize(
    "contents",
    [cbor2.dumps({1: 5}), cbor2.dumps([1]), b"\xff", cbor2.dumps({1: ["FIDO_2_0"], 3: "x"})],
)
def test_malformed_get_info_is_a_protocol_error(contents: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_get_info(contents)
    assert caught.value.reason is ProtocolReason.MALFORMED


def test_type_hint_cache_is_explicit_and_idempotent() -> None:
    assert cache_fido2_type_hints() is True
    assert cache_fido2_type_hints() is True
    assert getattr(fido2.utils, "get_type_hints") is not typing.get_type_hints  # noqa: B009


async def test_the_phones_name_reaches_status_and_log_without_control_characters() -> None:
    statuses: list[Status] = []
    client = HybridClient(origin="https://example.com", on_status=statuses.append)
    qr, _ = QRCode.generate()
    linking = new_linking_info(qr, bytes(32), "Pixel\x1b[2J\x07" + "x" * 200)
    await client._accept_linking(linking)
    (status,) = statuses
    assert status.stage is Stage.LINKED
    assert status.message.startswith("Linked with Pixel?[2J?xxx")
    assert status.message.isprintable() and len(status.message) < 100
    assert client.linking_info is linking
