"""What the `status` function does, in Python 3 with boto3, for the cold-start benchmark.

The handler reads one session with a consistent GetItem and answers the same JSON; the loop
below is the Lambda Runtime API client a Python runtime runs around a handler (awslambdaric
does the same three calls), so that both languages are timed under the same runtime API.
"""

import http.client
import json
import os
import re
import time

import boto3

TABLE = os.environ.get("TABLE_NAME", "phone-verification")
MAX_ATTEMPTS = int(os.environ.get("MAX_VERIFICATION_ATTEMPTS", "5"))
DYNAMODB = boto3.client("dynamodb")
SESSION_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def rfc3339(millis):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(millis / 1000))


def answer(status, body):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": json.dumps(body),
    }


def handler(event, _context):
    session_id = (event.get("pathParameters") or {}).get("session_id", "")
    if not SESSION_ID.match(session_id):
        return answer(400, {"error": "invalid_field", "field": "session_id",
                            "detail": "session_id must be a session id"})
    item = DYNAMODB.get_item(
        TableName=TABLE,
        Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "SESSION"}},
        ConsistentRead=True,
    ).get("Item")
    if item is None:
        return answer(404, {"error": "session_not_found",
                            "detail": "no verification session matches this phone number"})
    now = int(time.time() * 1000)
    expires = int(item["expires_at"]["N"])
    attempts = int(item["attempts"]["N"])
    state = item["state"]["S"]
    expired = now >= expires
    return answer(200, {
        "session_id": session_id,
        "is_verified": state == "verified",
        "is_expired": expired,
        "is_valid": state == "pending" and not expired and attempts < MAX_ATTEMPTS,
        "time_remaining_seconds": max(0, (expires - now) // 1000) if state == "pending" else 0,
        "attempt_count": attempts,
        "attempts_remaining": max(0, MAX_ATTEMPTS - attempts),
        "created_at": rfc3339(int(item["created_at"]["N"])),
        "expires_at": rfc3339(expires),
        "call_status": item.get("call_status", {}).get("S", "not-placed"),
    })


def main():
    host = os.environ["AWS_LAMBDA_RUNTIME_API"]
    runtime = http.client.HTTPConnection(host)
    while True:
        runtime.request("GET", "/2018-06-01/runtime/invocation/next")
        response = runtime.getresponse()
        request_id = response.getheader("lambda-runtime-aws-request-id")
        event = json.loads(response.read())
        result = json.dumps(handler(event, None))
        runtime.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", result)
        runtime.getresponse().read()


if __name__ == "__main__":
    main()
