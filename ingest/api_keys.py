"""API keys: held so that they never reach a log line, a file, an exception message or a repr."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

_MASK = "***"
# Query parameters that carry a credential in the two providers' URLs.
_CREDENTIAL_PARAM = re.compile(r"(?i)\b(token|apikey|api_key)=[^&\s'\"]*")


class MissingApiKey(RuntimeError):
    """No API key in the environment for a provider that needs one."""


class ApiKey:
    """A secret string. `str`, `repr` and f-strings show `***`; only `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("an API key must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the one place that must send it (a URL query parameter)."""
        return self._value

    def url_quoted(self) -> str:
        """The key as it appears percent-encoded in a URL, so it can be redacted there too."""
        return quote(self._value, safe="")

    def redact(self, text: str) -> str:
        """`text` with every occurrence of the key (plain or URL-encoded) replaced by `***`."""
        text = text.replace(self._value, _MASK)
        quoted = self.url_quoted()
        if quoted != self._value:
            text = text.replace(quoted, _MASK)
        return text

    def __repr__(self) -> str:
        return f"ApiKey('{_MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> tuple:
        # Pickling would write the key to disk or across a process boundary.
        raise TypeError("ApiKey cannot be pickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("ApiKey", self._value))


def redact_credentials(text: str, key: ApiKey | None = None) -> str:
    """Mask `token=`/`apikey=` query values and, when given, every occurrence of `key`."""
    text = _CREDENTIAL_PARAM.sub(lambda match: f"{match.group(1)}={_MASK}", text)
    return key.redact(text) if key is not None else text


class RedactCredentials(logging.Filter):
    """Logging filter that masks credentials in a record before any handler formats it.

    urllib3 logs request lines (with the query string) at DEBUG and websocket-client can trace
    its handshake; this filter keeps a key out of those lines if someone turns logging up.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A format string that no longer matches its arguments (another library's filter
            # may have rewritten it): keep every part, masked, rather than lose the line.
            message = " ".join([str(record.msg), *map(str, record.args or ())])
            record.msg, record.args = redact_credentials(message), ()
            return True
        cleaned = redact_credentials(message)
        if cleaned != message:
            # An empty tuple, not None: other filters on these loggers (databricks-sql) iterate it.
            record.msg, record.args = cleaned, ()
        return True


def protect_library_loggers() -> None:
    """Attach RedactCredentials to the HTTP and WebSocket libraries' loggers (idempotent)."""
    for name in ("urllib3.connectionpool", "urllib3", "websocket", "requests"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactCredentials) for existing in logger.filters):
            # First in line: later filters (databricks-sql's) then see an already-formatted
            # record with no arguments left to mismatch.
            logger.filters.insert(0, RedactCredentials())
