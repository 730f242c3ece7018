"""Verifies webhook messages with the `standardwebhooks` package, an
independent implementation of the Standard Webhooks specification.

Usage: verify_webhooks.py CASES_JSON
CASES_JSON is a list of {"secret", "headers", "body"}; prints a JSON list
with, per case, the parsed body when the signature verifies under that
secret, else the error message.
"""

import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    out = []
    for case in cases:
        try:
            out.append({"ok": Webhook(case["secret"]).verify(case["body"], case["headers"])})
        except WebhookVerificationError as e:
            out.append({"error": str(e)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
