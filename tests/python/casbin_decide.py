"""Answers access questions with pycasbin, the Python casbin implementation.

Usage: casbin_decide.py MODEL POLICY CASES_JSON
CASES_JSON is a list of [role, resource, action]; prints a JSON list of
booleans, one per case. The Rust test compares them with the service's own
decisions, proving the policy files mean the same in both implementations.
"""

import json
import sys

import casbin


def main() -> None:
    model, policy, cases_path = sys.argv[1:4]
    enforcer = casbin.Enforcer(model, policy)
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    print(json.dumps([bool(enforcer.enforce(*case)) for case in cases]))


if __name__ == "__main__":
    main()
