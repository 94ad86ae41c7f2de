"""Ticker symbols: one strict pattern, checked before a symbol reaches a message or a path.

Finnhub names instruments in several forms: US equities as plain tickers (`AAPL`, `BRK.B`,
`BF-B`), crypto pairs and forex pairs behind their venue (`BINANCE:BTCUSDT`, `OANDA:EUR_USD`,
`FXCM:EUR/USD`, `IC MARKETS:1`). The pattern accepts those and nothing that could escape a
folder or break a file name: every part starts and ends with a letter or digit, separators stand
alone (no `..`, no leading `/` or `.`), and there are no control characters or quotes. A symbol
can still hold `:`, `/` or a space, so it never goes into a path as it is: `symbol_path_part`
encodes it (Hive-style %XX escapes, the way Spark and Hive escape partition values).
"""

from __future__ import annotations

import re
from urllib.parse import quote

#: The venue before the colon: letters and digits, single spaces, dots or dashes between them.
_VENUE = r"[A-Z][A-Z0-9]*(?:[ .\-][A-Z0-9]+)*"
#: The instrument: letters and digits with single `.`, `-`, `_` or `/` between them.
_INSTRUMENT = r"[A-Z0-9]+(?:[.\-_/][A-Z0-9]+)*"
SYMBOL_PATTERN = re.compile(rf"^(?:{_VENUE}:)?{_INSTRUMENT}$")
MAX_SYMBOL_LENGTH = 40


class InvalidSymbol(ValueError):
    """A symbol that does not match SYMBOL_PATTERN."""


def validate_symbol(symbol: object) -> str:
    """Return `symbol` unchanged if it is a valid ticker, else raise InvalidSymbol."""
    if (
        not isinstance(symbol, str)
        or len(symbol) > MAX_SYMBOL_LENGTH
        or not SYMBOL_PATTERN.fullmatch(symbol)
    ):
        shown = repr(symbol)[:40]
        raise InvalidSymbol(
            f"invalid symbol {shown}: expected a Finnhub symbol such as AAPL, BRK.B, "
            "BINANCE:BTCUSDT, OANDA:EUR_USD or FXCM:EUR/USD"
        )
    return symbol


def symbol_path_part(symbol: str) -> str:
    """`symbol` as one safe path component: `FXCM:EUR/USD` → `FXCM%3AEUR%2FUSD`, `AAPL` → `AAPL`.

    Letters, digits, `.`, `-` and `_` stay; everything else becomes %XX. Decoding is
    `urllib.parse.unquote`. The symbol is validated first, so the result is never `.` or `..`.
    """
    return quote(validate_symbol(symbol), safe="")


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
