#!/usr/bin/env python3
"""Prepares a fresh moto server (in server mode) as the S3 + STS backend of the tests.

Usage: moto_setup.py BASE_URL [BUCKET]

While moto still accepts unauthenticated requests, this creates:
  - an IAM user with an access key, allowed only sts:AssumeRole (what cray-sts's own
    RGW user needs),
  - a role that this user may assume, with an inline policy allowing s3:* on *
    (the one fixed role cray-sts hands to every caller),
  - a bucket.
It then switches moto's authentication on (POST /moto-api/reset-auth with body 0): from
then on every request must carry a valid SigV4 signature from a known key and be allowed
by IAM policy. Prints one JSON line: access_key, secret_key, role_arn, bucket.
"""

import json
import sys
import urllib.request

import boto3
from botocore.config import Config

USER = "s3credsfs-sts"
ROLE = "s3credsfs-s3-access"


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: moto_setup.py BASE_URL [BUCKET]")
    base = sys.argv[1].rstrip("/")
    bucket = sys.argv[2] if len(sys.argv) == 3 else "s3credsfs-test"
    session = boto3.session.Session(
        # Any key works before authentication is switched on.
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
        region_name="us-east-1",
    )
    config = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
    iam = session.client("iam", endpoint_url=base, config=config)
    s3 = session.client("s3", endpoint_url=base, config=config)

    user_arn = iam.create_user(UserName=USER)["User"]["Arn"]
    account = user_arn.split(":")[4]
    iam.put_user_policy(
        UserName=USER,
        PolicyName="assume-role",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName=USER)["AccessKey"]

    role_arn = iam.create_role(
        RoleName=ROLE,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": [user_arn, f"arn:aws:iam::{account}:root"]},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
        MaxSessionDuration=43200,
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=ROLE,
        PolicyName="s3-all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    s3.create_bucket(Bucket=bucket)

    # Authentication on, starting with the very next request.
    # (Not form-encoded: Flask would swallow a form body and moto would read nothing.)
    request = urllib.request.Request(
        f"{base}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        if reply.status != 200:
            sys.exit(f"moto refused reset-auth: HTTP {reply.status}")

    print(
        json.dumps(
            {
                "access_key": key["AccessKeyId"],
                "secret_key": key["SecretAccessKey"],
                "role_arn": role_arn,
                "bucket": bucket,
            }
        )
    )


if __name__ == "__main__":
    main()
