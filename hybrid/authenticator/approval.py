"""Asking the phone's user before a passkey is created or used.

The callback stands in for the phone's consent screen and biometric check. Anything but an
explicit `True` counts as "no": a crashing or confused callback must never approve a sign-in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from hybrid.callbacks import call_maybe_async

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApprovalRequest:
    """What the user is asked to approve; `user_*` are None when no passkey matched."""

    kind: Literal["create", "get"]
    rp_id: str
    user_name: str | None
    user_display_name: str | None


Approver: TypeAlias = Callable[[ApprovalRequest], bool | Awaitable[bool]]


async def ask_user(approve: Approver | None, request: ApprovalRequest) -> bool:
    """Return True only if `approve` (plain or async) explicitly returns True; None approves."""
    if approve is None:
        return True
    try:
        answer = await call_maybe_async(approve, request)
    except Exception as exc:
        # The exception's text may quote user data; its type is enough to debug with.
        logger.warning(
            "approval callback raised %s for a %s request on %s; treating it as declined",
            type(exc).__name__,
            request.kind,
            request.rp_id,
        )
        return False
    return answer is True
