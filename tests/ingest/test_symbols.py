"""Every symbol form Finnhub uses is accepted; nothing that could escape a folder is."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from ingest.landing import bars_path
from ingest.symbols import InvalidSymbol, parse_symbol_list, symbol_path_part, validate_symbol

FINNHUB_FORMS = [
    "AAPL", "BRK.B", "BF-B", "7203.T", "BINANCE:BTCUSDT", "COINBASE:BTC-USD",
    "OANDA:EUR_USD", "FXCM:EUR/USD", "FOREX.COM:GBP/JPY", "IC MARKETS:1",
]
HOSTILE = [
    "../../etc", "A/../B", "/etc/passwd", "A..B", ".A", "A.", "aapl", "AAPL ", " AAPL",
    "A:B:C", ":A", "A:", "A//B", "A\x00B", "A\nB", "A:/B", "A:.B", "A B", "X" * 41, "",
    "A'B", 'A"B', "A\\B", "A;B",
]


@pytest.mark.parametrize("symbol", FINNHUB_FORMS)
def test_every_finnhub_symbol_form_is_accepted_and_lands_in_one_safe_folder(symbol, tmp_path):
    assert validate_symbol(symbol) == symbol
    part = symbol_path_part(symbol)
    assert unquote(part) == symbol
    assert "/" not in part and ":" not in part and " " not in part and part not in (".", "..")
    path = bars_path(tmp_path, "5min", symbol, "2024-03")
    assert path.parent.parent.name == f"symbol={part}"
    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert len(path.relative_to(tmp_path).parts) == 5


@pytest.mark.parametrize("symbol", HOSTILE)
def test_anything_that_could_escape_a_folder_or_break_a_name_is_refused(symbol):
    with pytest.raises(InvalidSymbol, match="invalid symbol"):
        validate_symbol(symbol)
    with pytest.raises(InvalidSymbol):
        bars_path(Path("/landing"), "5min", symbol, "2024-03")


def test_a_command_line_list_keeps_forex_pairs_whole():
    assert parse_symbol_list("AAPL, OANDA:EUR_USD,FXCM:EUR/USD,AAPL") == (
        "AAPL", "OANDA:EUR_USD", "FXCM:EUR/USD",
    )
