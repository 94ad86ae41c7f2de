"""An API key never shows in a repr, a formatted string, a pickle or a library's log line."""

from __future__ import annotations

import logging
import pickle
import re

import pytest

from ingest.api_keys import ApiKey, RedactCredentials, protect_library_loggers, redact_credentials

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
