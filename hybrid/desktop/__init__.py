"""The desktop role: `HybridClient` (phone and USB security keys), its phone sessions, and a
python-fido2 device adapter."""

from hybrid.desktop.client import PHONE_HINT_AFTER, TRANSPORTS, HybridClient
from hybrid.desktop.ctap_device import HybridCtapDevice
from hybrid.desktop.session import HybridSession

__all__ = ["PHONE_HINT_AFTER", "TRANSPORTS", "HybridClient", "HybridCtapDevice", "HybridSession"]
