"""Exit codes of the tunnel server's commands (node and cluster), the same as the hybrid CLIs'."""

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
