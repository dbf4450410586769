"""Communication latency lives with the link: see :mod:`edgesplit.system.link`.

Luger eq. 4.3 (one message), the eq. 3.3 response leg and the Shannon rate of
Pre-DNNOff eq. 4.2 have one home, :class:`edgesplit.system.link.Link`; these names are
re-exported for the predictors that price a cut without building a link.
"""

from __future__ import annotations

from edgesplit.system.link import shannon_rate, snr_from_db, transfer_seconds

__all__ = ["shannon_rate", "snr_from_db", "transfer_seconds"]
