"""Redaction of known secrets and credential-shaped strings, in shipped lines and own logging."""

from __future__ import annotations

import io
import logging

import pytest

from vintner.agent.redact import MASK, Redactor, install_logging_filter

TOKEN = "vtw_q8Xr2LmN5pK0sT7vW3yZ1aB4cD6eF9gH"


@pytest.mark.parametrize(("line", "secret"), [
    (f"token {TOKEN} leaked", TOKEN),
    ("vtw_someOtherWorkerToken1234567890", "someOtherWorkerToken"),
    ("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("temp ASIAXYZXYZXYZXYZXYZ1 used", "ASIAXYZXYZXYZXYZXYZ1"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "wJalrXUtnFEMI"),
    ('aws_session_token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVz"', "IQoJb3JpZ2lu"),
    ("ARM_CLIENT_SECRET=abc~defGHI123456", "abc~defGHI"),
    ('"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQ\\n-----END PRIVATE KEY-----\\n"',
     "MIIEvQ"),
    ("-----BEGIN RSA PRIVATE KEY-----MIIEpAIBAAKCAQEA-----END RSA PRIVATE KEY-----", "MIIEpA"),
    ("Authorization: Basic d2lkOlNFQ1JFVA==", "d2lkOlNFQ1JFVA"),
    ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
    ("TF_HTTP_PASSWORD=whatever-it-is", "whatever-it-is"),
])
def test_patterns(line: str, secret: str) -> None:
    out = Redactor([TOKEN]).redact(line)
    assert secret not in out
    assert MASK in out


def test_known_values_are_masked_wherever_they_appear() -> None:
    r = Redactor()
    r.add("sensitive-db-password")
    r.add("abc")  # too short to be treated as a secret: would mask ordinary text
    out = r.redact("pw=sensitive-db-password; also xsensitive-db-passwordx; abc stays")
    assert "sensitive-db-password" not in out
    assert "abc stays" in out


def test_ordinary_terraform_output_is_untouched() -> None:
    line = 'terraform_data.cluster: Creation complete after 0s [id=5f0c-7c2a]'
    assert Redactor([TOKEN]).redact(line) == line


def test_logging_filter_redacts_the_agents_own_logs() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.redact")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        install_logging_filter(Redactor([TOKEN]), logger)
        logger.warning("request with token %s failed", TOKEN)
        try:
            raise RuntimeError(f"boom {TOKEN}")
        except RuntimeError:
            logger.exception("oops")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert TOKEN not in text
    assert text.count(MASK) >= 2
