"""The CTAP key numbers in `hybrid.ctap` against python-fido2's own request builders and parsers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fido2.ctap import CtapDevice, CtapError
from fido2.ctap2.base import AssertionResponse, AttestationResponse, Ctap2, Info
from fido2.hid import CAPABILITY, CTAPHID

from hybrid.ctap import (
    CtapCommand,
    CtapStatus,
    GetAssertionKey,
    GetAssertionResponseKey,
    InfoKey,
    MakeCredentialKey,
    MakeCredentialResponseKey,
    command_name,
    decode_cbor_map,
    error_for_status,
)
from tests.conftest import PHONE_GET_INFO, PHONE_INFO


class RecordingDevice(CtapDevice):
    """Answers getInfo like our phone and refuses everything else, keeping the requests."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    @property
    def capabilities(self) -> int:
        return int(CAPABILITY.CBOR)

    def call(self, cmd: int, data: bytes = b"", *_: Any, **__: Any) -> bytes:
        assert cmd == CTAPHID.CBOR
        if data[0] == CtapCommand.GET_INFO:
            return b"\x00" + PHONE_GET_INFO
        self.requests.append(data)
        return bytes([CtapStatus.OPERATION_DENIED])

    @classmethod
    def list_devices(cls) -> Any:
        return iter(())


def _sent(call: Callable[[Ctap2], object]) -> dict[Any, Any]:
    device = RecordingDevice()
    with pytest.raises(CtapError):
        call(Ctap2(device))
    (request,) = device.requests
    return decode_cbor_map(request[1:])


def test_make_credential_keys_match_fido2s_builder() -> None:
    sent = _sent(
        lambda ctap2: ctap2.make_credential(
            b"h" * 32,
            {"id": "example.com"},
            {"id": b"u"},
            [{"type": "public-key", "alg": -7}],
            [{"type": "public-key", "id": b"x"}],
            {"credProtect": 1},
            {"rk": True},
            b"p",
            2,
            1,
        )
    )
    assert sent == {
        MakeCredentialKey.CLIENT_DATA_HASH: b"h" * 32,
        MakeCredentialKey.RP: {"id": "example.com"},
        MakeCredentialKey.USER: {"id": b"u"},
        MakeCredentialKey.PUB_KEY_CRED_PARAMS: [{"type": "public-key", "alg": -7}],
        MakeCredentialKey.EXCLUDE_LIST: [{"type": "public-key", "id": b"x"}],
        MakeCredentialKey.EXTENSIONS: {"credProtect": 1},
        MakeCredentialKey.OPTIONS: {"rk": True},
        MakeCredentialKey.PIN_UV_AUTH_PARAM: b"p",
        MakeCredentialKey.PIN_UV_AUTH_PROTOCOL: 2,
        MakeCredentialKey.ENTERPRISE_ATTESTATION: 1,
    }


def test_get_assertion_keys_match_fido2s_builder() -> None:
    sent = _sent(
        lambda ctap2: ctap2.get_assertion(
            "example.com",
            b"h" * 32,
            [{"type": "public-key", "id": b"x"}],
            {"hmac-secret": {}},
            {"uv": True},
            b"p",
            2,
        )
    )
    assert sent == {
        GetAssertionKey.RP_ID: "example.com",
        GetAssertionKey.CLIENT_DATA_HASH: b"h" * 32,
        GetAssertionKey.ALLOW_LIST: [{"type": "public-key", "id": b"x"}],
        GetAssertionKey.EXTENSIONS: {"hmac-secret": {}},
        GetAssertionKey.OPTIONS: {"uv": True},
        GetAssertionKey.PIN_UV_AUTH_PARAM: b"p",
        GetAssertionKey.PIN_UV_AUTH_PROTOCOL: 2,
    }


def test_info_keys_match_fido2s_parser() -> None:
    assert PHONE_INFO[InfoKey.VERSIONS] == PHONE_INFO.versions
    assert PHONE_INFO[InfoKey.AAGUID] == PHONE_INFO.aaguid
    assert PHONE_INFO[InfoKey.OPTIONS] == PHONE_INFO.options
    assert PHONE_INFO[InfoKey.TRANSPORTS] == PHONE_INFO.transports
    assert PHONE_INFO[InfoKey.ALGORITHMS] == PHONE_INFO.algorithms
    info = Info.from_dict(
        {
            InfoKey.VERSIONS: ["FIDO_2_1"],
            InfoKey.AAGUID: bytes(16),
            InfoKey.MAX_MSG_SIZE: 1200,
            InfoKey.MIN_PIN_LENGTH: 6,
            InfoKey.FIRMWARE_VERSION: 3,
            InfoKey.UV_MODALITY: 2,
            InfoKey.REMAINING_DISCOVERABLE_CREDENTIALS: 7,
        }
    )
    assert (info.max_msg_size, info.min_pin_length, info.firmware_version) == (1200, 6, 3)
    assert (info.uv_modality, info.remaining_disc_creds) == (2, 7)


def test_response_keys_match_fido2s_parsers() -> None:
    attestation = AttestationResponse.from_dict(
        {
            MakeCredentialResponseKey.FMT: "none",
            MakeCredentialResponseKey.AUTH_DATA: bytes(37),
            MakeCredentialResponseKey.ATT_STMT: {},
            MakeCredentialResponseKey.LARGE_BLOB_KEY: b"k" * 32,
        }
    )
    assert (attestation.fmt, attestation.att_stmt, attestation.large_blob_key) == (
        "none",
        {},
        b"k" * 32,
    )
    assertion = AssertionResponse.from_dict(
        {
            GetAssertionResponseKey.CREDENTIAL: {"type": "public-key", "id": b"x"},
            GetAssertionResponseKey.AUTH_DATA: bytes(37),
            GetAssertionResponseKey.SIGNATURE: b"s",
            GetAssertionResponseKey.USER: {"id": b"u"},
            GetAssertionResponseKey.NUMBER_OF_CREDENTIALS: 2,
            GetAssertionResponseKey.USER_SELECTED: True,
        }
    )
    assert assertion.signature == b"s" and assertion.user == {"id": b"u"}
    assert (assertion.number_of_credentials, assertion.user_selected) == (2, True)


@pytest.mark.parametrize(
    ("command", "name"),
    [(0x01, "makeCredential"), (0x02, "getAssertion"), (0x04, "getInfo"), (0x7F, "0x7f")],
)
def test_command_names(command: int, name: str) -> None:
    assert command_name(command) == name


@pytest.mark.parametrize(
    "status",
    [CtapStatus.NO_CREDENTIALS, CtapStatus.CREDENTIAL_EXCLUDED, CtapStatus.UNSUPPORTED_ALGORITHM],
)
def test_errors_naming_the_site_make_its_name_printable(status: CtapStatus) -> None:
    error = error_for_status(status, rp_id="\x1b[2Jexample.com\u202e")
    assert error.rp_id == "\x1b[2Jexample.com\u202e"  # the data is kept as it came
    assert "?[2Jexample.com?" in str(error)
    assert "\x1b" not in str(error) and "\u202e" not in str(error)
