"""Deterministic trade ids: the same trade in the same message position always gets the same id."""

from __future__ import annotations

import hashlib


def trade_id(symbol: str, trade_ts_ms: int, price: float, volume: float, position: int) -> str:
    """Return the 32-hex-digit id of a trade.

    The id hashes the symbol, the exchange timestamp in epoch milliseconds, the price, the
    volume and the trade's position within its message, so a replayed message yields the same
    ids and two identical prints in one message stay distinct. Price and volume are hashed as
    Python floats (`repr` is the shortest round-trip form), so `100` and `100.0` agree.
    """
    key = f"{symbol}|{int(trade_ts_ms)}|{float(price)!r}|{float(volume)!r}|{int(position)}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
