"""An API key never shows in a repr, a formatted string, a pickle or a library's log line."""

from __future__ import annotations

import logging
import pickle
import re

import pytest

from ingest.api_keys import (
    ApiKey,
    KeyNotAllowed,
    RedactCredentials,
    key_destination,
    protect_library_loggers,
    redact_credentials,
    refuse_key_destination,
)

KEY = "SECRET-KEY-9f8e7d"


def test_key_is_masked_in_every_text_form():
    key = ApiKey(KEY)
    for shown in (repr(key), str(key), f"{key}", f"{key!r}", repr([key]), repr({"k": key})):
        assert KEY not in shown
    assert key.reveal() == KEY


def test_key_cannot_be_pickled():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ApiKey(KEY))


def test_redaction_covers_query_parameters_and_url_encoded_keys():
    key = ApiKey("a key/with+chars")
    text = f"GET /query?symbol=AAPL&apikey={key.url_quoted()} and raw {key.reveal()}"
    cleaned = redact_credentials(text, key)
    assert key.reveal() not in cleaned and key.url_quoted() not in cleaned
    assert redact_credentials("wss://ws.finnhub.io?token=abc123&x=1") == (
        "wss://ws.finnhub.io?token=***&x=1"
    )


def test_library_debug_logs_are_redacted(caplog):
    protect_library_loggers()
    protect_library_loggers()  # idempotent: one filter, not two
    logger = logging.getLogger("urllib3.connectionpool")
    # Other libraries (mlflow, databricks-sql) add filters of their own; ours is there once.
    assert sum(isinstance(f, RedactCredentials) for f in logger.filters) == 1
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        logger.debug('%s "GET /query?function=X&apikey=%s HTTP/1.1" 200', "http://h:1", KEY)
    assert caplog.records
    assert KEY not in caplog.text
    # The request line is logged with the key masked: by our filter (***) or, when
    # databricks-sql was imported first, by its own (<REDACTED>) before ours sees it.
    assert re.search(r"apikey=(\*\*\*|<REDACTED>)", caplog.text)


@pytest.mark.parametrize(
    ("url", "listed", "allowed"),
    [
        ("wss://ws.finnhub.io", (), True),
        ("wss://ws.finnhub.io:443/?x=1", (), True),
        ("ws://ws.finnhub.io", (), False),  # the provider, in clear text
        ("wss://finnhub.io.evil.example", (), False),
        ("wss://evilfinnhub.io", (), False),
        ("ws://127.0.0.1:8765", (), False),
        ("ws://127.0.0.1:8765", ("ws://127.0.0.1:8765",), True),
        ("ws://127.0.0.1:8766", ("ws://127.0.0.1:8765",), False),  # another port
        ("wss://127.0.0.1:8765", ("ws://127.0.0.1:8765",), False),  # another scheme
    ],
)
def test_a_key_goes_only_over_tls_to_its_provider_or_a_listed_url(url, listed, allowed):
    assert (key_destination(url, "finnhub.io", listed) is not None) is allowed


def test_a_key_refused_for_the_provider_in_clear_text_says_to_use_tls():
    error = refuse_key_destination("ws://ws.finnhub.io?token=abc", "finnhub.io", "FINNHUB_API_KEY")
    assert isinstance(error, KeyNotAllowed)
    assert str(error) == (
        "refusing to send FINNHUB_API_KEY in clear text to ws://ws.finnhub.io?token=***: "
        "use wss://"
    )
