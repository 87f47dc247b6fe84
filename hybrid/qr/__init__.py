"""Show the hybrid ``FIDO:/`` QR code (terminal, PNG, SVG) and read one back from an image.

Drawing needs only ``qrcode`` (PNG files also need Pillow); reading needs the ``zbarimg``
program from zbar-tools. Errors are ``hybrid.errors.HybridError`` subclasses defined in
``hybrid.qr.render`` and ``hybrid.qr.image``.
"""

from hybrid.qr.image import decode_qr_image
from hybrid.qr.render import make_qr, render_terminal, write_png, write_svg

__all__ = ["decode_qr_image", "make_qr", "render_terminal", "write_png", "write_svg"]
