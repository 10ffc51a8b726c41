"""Schemathesis hooks of `infra/fuzz.sh`: sign every Twilio webhook request the way Twilio
does (HMAC-SHA1 of the URL and the sorted form parameters, with the local stack's webhook
token), so that generated callbacks get past the signature and reach the handler. A case
generated without the header keeps it missing (that is what it tests)."""

import base64
import hashlib
import hmac
import os
from urllib.parse import parse_qsl

import requests
import schemathesis

TOKEN = os.environ.get("FUZZ_TWILIO_TOKEN", "local-twilio-auth-token")


def signature(url: str, params: list[tuple[str, str]]) -> str:
    message = url
    for key in sorted({k for k, _ in params}):
        for value in sorted({v for k, v in params if k == key}):
            message += key + value
    digest = hmac.new(TOKEN.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@schemathesis.hook
def before_call(context, case, **kwargs):
    if not case.operation.path.startswith("/webhooks/twilio/"):
        return
    headers = dict(case.headers or {})
    present = [name for name in headers if name.lower() == "x-twilio-signature"]
    if not present:
        # A case without the header tests its absence: it stays unsigned.
        return
    sent = case.as_transport_kwargs()
    prepared = requests.Request(
        method=sent.get("method", "POST"),
        url=sent["url"],
        params=sent.get("params"),
        data=sent.get("data"),
        json=sent.get("json"),
        headers=sent.get("headers"),
    ).prepare()
    body = prepared.body or ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        params = parse_qsl(body, keep_blank_values=True)
    except ValueError:
        params = []
    for name in present:
        del headers[name]
    headers["X-Twilio-Signature"] = signature(prepared.url, params)
    case.headers = headers
