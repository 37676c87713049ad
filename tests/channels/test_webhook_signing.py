"""Webhooks are signed by the `standardwebhooks` package (the `webhooks` extra): what it
signs, a receiver using the same library verifies; without the package a channel
cannot be made, with a clear error, and `import signoff` never imports it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from signoff import errors
from signoff.channels import WebhookChannel
from signoff.channels import webhook as hooks
from tests.channels.receivers import SECRET


def test_a_signature_the_library_verifies() -> None:
    body = json.dumps({"type": "run.completed", "data": {"run_id": "r1"}}).encode()
    now = int(time.time())
    signature = hooks.sign(hooks.signer(SECRET), "msg_1", now, body)
    assert signature.startswith("v1,")
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    verified = Webhook(SECRET).verify(body, headers)
    assert verified == {"type": "run.completed", "data": {"run_id": "r1"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)


def test_without_the_package_the_channel_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "standardwebhooks", None)  # as if not installed
    with pytest.raises(errors.InvalidArgument, match=r"pip install 'signoff\[webhooks\]'"):
        WebhookChannel("hook", url="https://example.com/hook", secret=SECRET)


def test_a_bad_secret_is_refused_before_the_package_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "standardwebhooks", None)
    with pytest.raises(errors.InvalidArgument, match="whsec_"):
        WebhookChannel("hook", url="https://example.com/hook", secret="plain-text")


def test_importing_signoff_does_not_import_standardwebhooks() -> None:
    code = (
        "import sys, signoff, signoff.channels, signoff.server; "
        "print('standardwebhooks' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
