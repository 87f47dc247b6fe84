"""FIDO hybrid transport (caBLE v2): sign in on a desktop with the passkey on a phone.

`HybridClient` runs ceremonies from a desktop; `hybrid.authenticator.answer_qr` is the phone's
side; `hybrid.protocol` is the pure protocol core both stand on. `HybridClient` is imported
lazily so that `import hybrid.protocol` pulls in no Bluetooth or WebSocket code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hybrid.errors import BluetoothReason, BluetoothUnavailable, CeremonyTimeout, HybridError
from hybrid.status import Stage, Status

if TYPE_CHECKING:
    from hybrid.desktop import HybridClient

__all__ = [
    "BluetoothReason",
    "BluetoothUnavailable",
    "CeremonyTimeout",
    "HybridClient",
    "HybridError",
    "Stage",
    "Status",
]


def __getattr__(name: str) -> Any:
    if name == "HybridClient":
        from hybrid.desktop import HybridClient

        return HybridClient
    raise AttributeError(f"module 'hybrid' has no attribute {name!r}")
