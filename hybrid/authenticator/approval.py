"""Asking the phone's user before a passkey is created or used.

The callback stands in for the phone's consent screen and, when the authenticator is built
with `verifies_user=True`, its PIN or biometric check. Anything but an explicit `True` counts
as "no": a crashing or confused callback must never approve a sign-in. There is no implicit
approver; `approve_all` is the explicit one for tests and demos.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from hybrid.callbacks import call_maybe_async
from hybrid.text import printable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApprovalRequest:
    """What the user is asked to approve; `user_*` are None when no passkey matched.

    `user_verification` is True when the site asked for verification (a PIN, a biometric),
    not only presence: the UI must then verify the user, not just ask for a confirm, since
    an approval sets the response's UV flag.
    """

    kind: Literal["create", "get"]
    rp_id: str
    user_name: str | None
    user_display_name: str | None
    user_verification: bool = False


Approver: TypeAlias = Callable[[ApprovalRequest], bool | Awaitable[bool]]


def approve_all(request: ApprovalRequest) -> bool:
    """Approve every request without asking anyone: for tests and demos only.

    An authenticator using it proves presence of nothing but the program; never pair it with
    `verifies_user=True` outside tests that model a phone which verifies its user.
    """
    return True


async def ask_user(approve: Approver, request: ApprovalRequest) -> bool:
    """Return True only if `approve` (plain or async) explicitly returns True."""
    try:
        answer = await call_maybe_async(approve, request)
    except Exception as exc:
        # The exception's text may quote user data; its type is enough to debug with.
        logger.warning(
            "approval callback raised %s for a %s request on %s; treating it as declined",
            type(exc).__name__,
            request.kind,
            printable(request.rp_id),  # the desktop chose it
        )
        return False
    return answer is True
