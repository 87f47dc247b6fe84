"""The BLE layer: it moves caBLE advert bytes, it never decrypts them.

Desktop: `CableScanner` (bleak) yields raw service data; `check_bluetooth` says whether scanning
can work here. Phone: `BluezAdvertiser` (`hybrid.ble.bluez_advertiser`, Linux) and
`BumbleAdvertiser` (`hybrid.ble.bumble_advertiser`, bumble extra) both implement `Advertiser`.
Those two, `VirtualRadio` and `BumbleScannerBackend` are imported from their own modules so that
neither dbus-fast nor bumble is needed to import this package.
"""

from hybrid.ble.advertiser import Advertiser, check_service_data
from hybrid.ble.availability import bluetooth_reason, bluetooth_unavailable
from hybrid.ble.scanner import CableAdvert, CableScanner, check_bluetooth

__all__ = [
    "Advertiser",
    "CableAdvert",
    "CableScanner",
    "bluetooth_reason",
    "bluetooth_unavailable",
    "check_bluetooth",
    "check_service_data",
]
