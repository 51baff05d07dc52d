"""The egress guard (``portal.egress``) under the HTTP clients the portal uses.

Each client keeps its own TLS, SNI, ``Host`` header and certificate checks:
only the step that opens the TCP connection is replaced by ``egress.connect``,
which resolves the name once and connects to the address it vetted.

- requests (webhooks, Google OAuth, Azure's transport): ``guarded_session()``,
  a Session that never follows redirects and ignores proxy variables (a proxy
  would make the connection on our behalf, out of the guard's sight).
- botocore (S3): ``guard_boto_client(client)`` swaps the connection classes of
  the client's pool manager.
- httplib2 (Google Drive): ``GuardedHttp``, which also follows no redirects.

requests-hardened was considered: its filter allows loopback or nothing (no
CIDR exemptions), looks at the first DNS answer only, and covers requests
alone; one guard for every protocol keeps one rule.
"""

from __future__ import annotations

import socket
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httplib2
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from . import egress


class _GuardedConnect:
    """urllib3 connection mixin: open the socket through the guard. An
    OutboundRefused is not an OSError, so urllib3 neither retries it nor
    wraps it: it reaches the caller as it is."""

    def _new_conn(self: Any) -> socket.socket:
        try:
            return egress.connect(
                self._dns_host,
                self.port,
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class GuardedHTTPConnection(_GuardedConnect, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnect, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise requests.exceptions.InvalidProxyURL(
            "Outbound connections go through the egress guard, not through a proxy"
        )


class GuardedSession(requests.Session):
    """A requests Session whose every connection goes through the guard and
    which never follows a redirect (a 3xx is returned as it is)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no HTTP(S)_PROXY, no .netrc credentials
        self.mount("http://", GuardedAdapter())
        self.mount("https://", GuardedAdapter())

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        kwargs["proxies"] = {}
        return super().send(request, **kwargs)


def guarded_session() -> GuardedSession:
    return GuardedSession()


def guard_requests_session(session: requests.Session) -> requests.Session:
    """Route an existing Session (one a library made) through the guard. It
    raises TooManyRedirects rather than follow a redirect."""
    session.trust_env = False
    session.max_redirects = 0
    session.mount("http://", GuardedAdapter())
    session.mount("https://", GuardedAdapter())
    return session


# -- botocore ---------------------------------------------------------------------------------


@cache
def _boto_pool_classes() -> dict[str, type]:
    # botocore is imported here, not at module level: web processes that only
    # send webhooks never load it.
    from botocore.awsrequest import (
        AWSHTTPConnection,
        AWSHTTPConnectionPool,
        AWSHTTPSConnection,
        AWSHTTPSConnectionPool,
    )

    class GuardedAWSHTTPConnection(_GuardedConnect, AWSHTTPConnection):
        pass

    class GuardedAWSHTTPSConnection(_GuardedConnect, AWSHTTPSConnection):
        pass

    class GuardedAWSHTTPConnectionPool(AWSHTTPConnectionPool):
        ConnectionCls = GuardedAWSHTTPConnection

    class GuardedAWSHTTPSConnectionPool(AWSHTTPSConnectionPool):
        ConnectionCls = GuardedAWSHTTPSConnection

    return {"http": GuardedAWSHTTPConnectionPool, "https": GuardedAWSHTTPSConnectionPool}


def guard_boto_client(client: Any) -> Any:
    """Make a boto3 client open every connection through the guard, with no
    proxy. botocore offers no public hook for its connection classes; its
    URLLib3Session keeps them in ``_pool_classes_by_scheme`` (so since 1.11)."""
    pools = _boto_pool_classes()
    http_session = client._endpoint.http_session
    http_session._pool_classes_by_scheme = pools
    http_session._manager.pool_classes_by_scheme = pools
    http_session._proxy_config = type(http_session._proxy_config)(proxies={})
    return client


# -- httplib2 ---------------------------------------------------------------------------------


class _GuardedHttplib2HTTP(httplib2.HTTPConnectionWithTimeout):
    def connect(self) -> None:
        self.sock = egress.connect(self.host, self.port, self.timeout)


class _GuardedHttplib2HTTPS(httplib2.HTTPSConnectionWithTimeout):
    def connect(self) -> None:
        sock = egress.connect(self.host, self.port, self.timeout)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class GuardedHttp(httplib2.Http):
    """httplib2.Http whose connections go through the guard; no proxies, no
    redirects (Drive's 308 "resume incomplete" is an answer, not a redirect)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["proxy_info"] = None
        super().__init__(*args, **kwargs)
        self.follow_redirects = False

    def request(self, uri: str, *args: Any, connection_type: Any = None, **kwargs: Any) -> Any:
        if connection_type is None:
            https = urlsplit(uri).scheme.lower() == "https"
            connection_type = _GuardedHttplib2HTTPS if https else _GuardedHttplib2HTTP
        return super().request(uri, *args, connection_type=connection_type, **kwargs)
