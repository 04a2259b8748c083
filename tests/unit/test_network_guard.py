"""The unit suite's promise: no test reaches the network."""

from __future__ import annotations

import socket

import pytest


def test_connect_to_a_remote_address_fails() -> None:
    with socket.socket() as sock, pytest.raises(RuntimeError, match="must not use the network"):
        sock.connect(("10.255.255.1", 443))


def test_dns_lookup_fails() -> None:
    with pytest.raises(RuntimeError, match="DNS lookup"):
        socket.getaddrinfo("management.azure.com", 443)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=1):
            pass


def test_requests_to_a_remote_host_fail() -> None:
    import requests

    with pytest.raises(Exception, match="must not use the network"):
        requests.get("https://example.com", timeout=1)
