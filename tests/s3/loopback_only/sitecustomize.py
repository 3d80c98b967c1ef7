"""Test guard, imported by every Python client the client tests run (PYTHONPATH).

Lets sockets connect to loopback addresses and Unix sockets only. Anything else, above
all the instance metadata service at 169.254.169.254 that s3cmd and botocore may try,
is refused on the spot as an unreachable network would refuse it (ENETUNREACH), so no
packet ever leaves the machine, and each attempt is appended as one line to the file
named by $S3CREDSFS_TEST_CONNECT_LOG, for the test to assert on.
"""

import errno
import ipaddress
import os
import socket

_LOG = os.environ.get("S3CREDSFS_TEST_CONNECT_LOG")
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _blocked(address):
    """The address as text when connecting to it is not allowed, else None."""
    if not isinstance(address, tuple):
        return None
    host = address[0]
    try:
        if ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
            return None
    except ValueError:
        if host == "localhost":
            return None
    text = "%s:%s" % (host, address[1])
    if _LOG:
        with open(_LOG, "a") as log:
            log.write(text + "\n")
    return text


def connect(self, address):
    blocked = _blocked(address)
    if blocked:
        raise OSError(errno.ENETUNREACH, "blocked by the test guard: " + blocked)
    return _connect(self, address)


def connect_ex(self, address):
    if _blocked(address):
        return errno.ENETUNREACH
    return _connect_ex(self, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
