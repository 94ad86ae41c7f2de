"""Ticker symbols: one strict pattern, checked before a symbol reaches a message or a path."""

from __future__ import annotations

import re

# Plain tickers (AAPL, BRK.B, BF-B) and exchange-prefixed ones (BINANCE:BTCUSDT).
# No slash, no "..", no whitespace: a symbol is safe to put in a file path.
SYMBOL_PATTERN = re.compile(r"^(?:[A-Z]{1,10}:)?[A-Z0-9]{1,12}(?:[.\-][A-Z0-9]{1,4})?$")


class InvalidSymbol(ValueError):
    """A symbol that does not match SYMBOL_PATTERN."""


def validate_symbol(symbol: object) -> str:
    """Return `symbol` unchanged if it is a valid ticker, else raise InvalidSymbol."""
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.fullmatch(symbol):
        shown = repr(symbol)[:40]
        raise InvalidSymbol(
            f"invalid symbol {shown}: expected upper-case letters and digits such as AAPL, "
            "BRK.B or BINANCE:BTCUSDT"
        )
    return symbol


def validate_symbols(symbols: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate every symbol and return them as a de-duplicated tuple, order kept."""
    seen: dict[str, None] = {}
    for symbol in symbols:
        seen[validate_symbol(symbol)] = None
    if not seen:
        raise InvalidSymbol("no symbols given")
    return tuple(seen)


def parse_symbol_list(text: str) -> tuple[str, ...]:
    """Parse a comma-separated command-line list such as "AAPL,MSFT"."""
    return validate_symbols([part.strip() for part in text.split(",") if part.strip()])
