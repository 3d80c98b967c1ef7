#!/usr/bin/env python3
"""moto's S3 + STS server (`moto_server`), with one fix to its signature check.

Usage: moto_server.py -H HOST -p PORT (moto_server's own arguments)

moto checks a request's SigV4 signature by signing the URL it was given again, but its
web framework (werkzeug 3) hands it the query string partly decoded: `delimiter=%2F`
arrives as `delimiter=/`. The canonical request then differs from the client's, and
every listing with a `/` delimiter (`aws s3 ls s3://BUCKET`, `rclone lsf`, `s3cmd ls`)
fails with SignatureDoesNotMatch although a real S3 accepts it. This re-encodes each
query key and value the way SigV4 prescribes (everything but `A-Za-z0-9-_.~`) before
moto signs; the check is otherwise moto's own, so wrong keys, secrets and session
tokens are still refused.
"""

import sys
from urllib.parse import quote, unquote

from moto.iam import access_control
from moto.server import main

_create_aws_request = access_control.IAMRequestBase._create_aws_request


def _sigv4_encode(text):
    return quote(unquote(text), safe="-_.~")


def _create_aws_request_with_encoded_query(self):
    request = _create_aws_request(self)
    path, question, query = request.url.partition("?")
    if question and query:
        pairs = []
        for pair in query.split("&"):
            key, equals, value = pair.partition("=")
            pairs.append(_sigv4_encode(key) + equals + _sigv4_encode(value))
        request.url = path + "?" + "&".join(pairs)
    return request


access_control.IAMRequestBase._create_aws_request = _create_aws_request_with_encoded_query

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
