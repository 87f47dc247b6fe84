"""The desktop role: `HybridClient`, the sessions it opens, and a python-fido2 device adapter."""

from hybrid.desktop.client import PHONE_HINT_AFTER, HybridClient
from hybrid.desktop.ctap_device import HybridCtapDevice
from hybrid.desktop.session import HybridSession

__all__ = ["PHONE_HINT_AFTER", "HybridClient", "HybridCtapDevice", "HybridSession"]
