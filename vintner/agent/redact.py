"""Keeps secrets out of shipped log lines and out of the agent's own logging.

Two layers: exact values the agent knows are secret (the worker token, credentials it
obtained for a job, anything a caller marks sensitive) and patterns for well-known
credential shapes that might show up in Terraform's output even though the agent never
saw the value (AWS keys, GCP service-account private keys, Azure client secrets, bearer
and basic auth headers, Vintner worker tokens).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "[REDACTED]"

# Shorter values would mask ordinary words (and are not credentials worth the name).
_MIN_SECRET_LEN = 6

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys (a GCP key file pasted into a variable, an SSH key...). First, so
    # the key=value rule below does not break the BEGIN line before this one sees it.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
            re.S,
        ),
        MASK,
    ),
    # Vintner worker tokens carry a recognisable prefix.
    (re.compile(r"vtw_[A-Za-z0-9_\-]{16,}"), MASK),
    # AWS access key ids (long-term AKIA, temporary ASIA, ...).
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"), MASK),
    # KEY=value / "key": "value" for secret-looking names (AWS, Azure, GCP, generic).
    (
        re.compile(
            r"""(?ix)
            (?P<key>
              aws_secret_access_key | aws_session_token | aws_security_token
              | arm_client_secret | arm_access_key | arm_sas_token | arm_oidc_token
              | azure_client_secret | client_secret | private_key(?:_id)?
              | tf_http_password | vintner_worker_token | grape_worker_token
              | x-worker-token | password | secret(?:_key)? | token
            )
            (?P<sep>["']?\s*[:=]\s*["']?)
            (?P<value>[^\s"',;]{4,})
            """
        ),
        r"\g<key>\g<sep>" + MASK,
    ),
    (
        re.compile(r"(?i)\b(authorization\s*:\s*(?:basic|bearer)\s+)[A-Za-z0-9+/=._\-]+"),
        r"\1" + MASK,
    ),
)


class Redactor:
    """Thread-safe: the log shipper, the heartbeat thread and job code share one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Mark a value as secret from now on (too-short values are ignored)."""
        if not secret or len(secret) < _MIN_SECRET_LEN:
            return
        with self._lock:
            self._secrets.add(secret)

    def add_all(self, secrets: Iterable[str | None]) -> None:
        for secret in secrets:
            self.add(secret)

    def redact(self, text: str) -> str:
        with self._lock:
            # Longest first, so a secret containing another is masked whole.
            known = sorted(self._secrets, key=len, reverse=True)
        for secret in known:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites every record's final message through a Redactor."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        return True


def install_logging_filter(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Attach the filter to every handler of ``logger`` (root by default).

    Filters on handlers (not loggers) see records propagated from child loggers too.
    """
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))
