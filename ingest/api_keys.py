"""API keys: held so that they never reach a log line, a file, an exception message or a repr,
and sent only where they belong.

A key goes only over TLS (wss://, https://) to its provider's domain, or to a URL an operator
listed explicitly (`key_urls` in the settings: a relay, a proxy, a test server); anywhere else
it is not sent at all. `key_destination` decides, the collectors refuse to start otherwise.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

_MASK = "***"
# Query parameters that carry a credential in the two providers' URLs.
_CREDENTIAL_PARAM = re.compile(r"(?i)\b(token|apikey|api_key)=[^&\s'\"]*")


class MissingApiKey(RuntimeError):
    """No API key in the environment for a provider that needs one."""


class KeyNotAllowed(ValueError):
    """An API key would go somewhere it must not: in clear text, or to a foreign host."""


_TLS = {"wss": "wss", "https": "https", "ws": "wss", "http": "https"}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1  # a malformed port matches nothing
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def is_provider_host(url: str, provider_domain: str) -> bool:
    """True when the URL's host is `provider_domain` or one of its subdomains."""
    host = _origin(url)[1]
    domain = provider_domain.lower()
    return host == domain or host.endswith(f".{domain}")


def key_destination(
    url: str, provider_domain: str, key_urls: Sequence[str] = ()
) -> str | None:
    """Why `url` may receive the provider's API key, or None when it may not.

    Allowed: TLS (wss/https) to `provider_domain` or a subdomain; or a URL whose scheme, host
    and port equal one of `key_urls` (the explicit opt-in, plain text included).
    """
    scheme, host, port = _origin(url)
    for listed in key_urls:
        if (scheme, host, port) == _origin(listed) and host:
            return f"{scheme}://{host}{f':{port}' if port else ''} is listed in key_urls"
    if scheme in ("wss", "https") and is_provider_host(url, provider_domain):
        return f"TLS to {provider_domain}"
    return None


def refuse_key_destination(url: str, provider_domain: str, env_name: str) -> KeyNotAllowed:
    """The error for a key that may not go to `url`, saying what would make it allowed."""
    shown = redact_credentials(url)
    if is_provider_host(url, provider_domain):
        scheme = _origin(url)[0]
        return KeyNotAllowed(
            f"refusing to send {env_name} in clear text to {shown}: use "
            f"{_TLS.get(scheme, 'wss')}://"
        )
    return KeyNotAllowed(
        f"refusing to send {env_name} to {shown}: keys go only over TLS to {provider_domain}; "
        "to send it there anyway, list the URL in the settings' key_urls"
    )


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
