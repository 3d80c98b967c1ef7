"""A long-running boto3 process, for the tests that prove it renews its credentials.

One boto3 session for the whole run, S3 calls paced by a short sleep; after each call,
the access key the session holds. Runs until the session has used WANTED_KEYS different
keys or GIVE_UP_SECONDS pass. Any failure raises (and exits non-zero). Prints
{"calls": N, "keys": [...], "method": ..., "seconds": S}.

Environment: S3_BUCKET, WANTED_KEYS, GIVE_UP_SECONDS, and whatever gives boto3 its
credentials (the mount's config file, or exec's container endpoint).
"""

import json
import os
import time

import boto3

session = boto3.Session()
s3 = session.client("s3")
bucket, give_up = os.environ["S3_BUCKET"], float(os.environ["GIVE_UP_SECONDS"])
wanted = int(os.environ["WANTED_KEYS"])
start, calls, keys = time.monotonic(), 0, []


def key_in_use():
    keys.append(session.get_credentials().get_frozen_credentials().access_key)


while len(set(keys)) < wanted and time.monotonic() - start < give_up:
    name, body = "long-running/%d" % calls, os.urandom(8).hex().encode()
    s3.put_object(Bucket=bucket, Key=name, Body=body)
    key_in_use()
    assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == body
    key_in_use()
    calls += 2
    time.sleep(0.2)
print(
    json.dumps(
        {
            "calls": calls,
            "keys": keys,
            "method": session.get_credentials().method,
            "seconds": time.monotonic() - start,
        }
    )
)
