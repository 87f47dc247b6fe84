"""What every phone-side advertiser offers, and the one check of the bytes it is asked to send.

The phone role does not care whether its advert leaves through BlueZ or through a bumble
controller; it needs `advertise(service_data)` and `stop()`. Both backends take the same bytes,
so the check of those bytes lives here once.
"""

from __future__ import annotations

from typing import Protocol

from hybrid.errors import AdvertiserError, AdvertiserReason

#: A legacy advert carries 31 bytes of AD; the Service Data element spends 4 on length, type
#: and the 16-bit UUID, which leaves 27 for the payload (20 for caBLE, plus any CTAP 2.3 suffix).
MAX_LEGACY_SERVICE_DATA = 27


class Advertiser(Protocol):
    """A BLE advertiser the phone role can drive: one caBLE service-data advert at a time."""

    async def advertise(self, service_data: bytes) -> None:
        """Start advertising `service_data` under UUID 0xFFF9, replacing any earlier advert."""

    async def stop(self) -> None:
        """Stop advertising; calling it again, or before `advertise`, does nothing."""


def check_service_data(service_data: object, limit: int = MAX_LEGACY_SERVICE_DATA) -> bytes:
    """Return `service_data` as bytes, or raise AdvertiserError if no advert could carry it."""
    if not isinstance(service_data, bytes | bytearray | memoryview):
        raise AdvertiserError(
            f"The advert payload must be bytes, not {type(service_data).__name__}: pass the "
            "20 encrypted bytes from the advert encryption step.",
            AdvertiserReason.BAD_PAYLOAD,
        )
    data = bytes(service_data)
    if not data:
        raise AdvertiserError(
            "The advert payload is empty: pass the 20 encrypted bytes from the advert "
            "encryption step.",
            AdvertiserReason.BAD_PAYLOAD,
        )
    if len(data) > limit:
        raise AdvertiserError(
            f"The advert payload is {len(data)} bytes but a BLE advert can carry at most "
            f"{limit}: send the 20-byte caBLE advert (plus at most {limit - 20} suffix bytes).",
            AdvertiserReason.BAD_PAYLOAD,
        )
    return data
