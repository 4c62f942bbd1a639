"""GET a URL a client gave us (an image to size) without letting it reach the gateway's own network (SSRF).

A client-supplied URL could name 127.0.0.1, the cloud metadata service (169.254.169.254) or a host of
the private network the gateway runs in. So, for the URL and for every redirect (followed by hand, at
most MAX_REDIRECTS): only http(s) without credentials; the host is resolved and ALL its addresses must be
public; the request then connects to the address that was checked, while the Host header and the TLS
server name keep the original name. A DNS answer that changes between the check and the connection
(rebinding) therefore cannot slip through: there is no second lookup.

IMAGE_FETCH_ALLOW_PRIVATE=true lifts the address rule, for gateways whose images live on a private network.
"""

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from django.conf import settings

from relay import upstream

MAX_REDIRECTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The URL is not one the gateway fetches; the message is meant for the client."""


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast. An IPv6 address that carries an IPv4 one (mapped, 6to4, NAT64) is judged
    by the IPv4 address, which is where the packets end up."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or nat64_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address.is_site_local:  # fec0::/10, deprecated but still routed on some networks
            return False
    refused = (
        address.is_loopback,
        address.is_private,  # RFC 1918, unique-local fc00::/7, documentation and benchmark ranges
        address.is_link_local,  # 169.254/16 (cloud metadata), fe80::/10
        address.is_multicast,
        address.is_unspecified,
        address.is_reserved,
    )
    return address.is_global and not any(refused)


def nat64_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64 else None


def parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise Refused("an image URL in the request is not a valid URL") from None
    if parsed.scheme not in DEFAULT_PORTS:
        raise Refused("image_url.url must be a data URL or an http(s) URL")
    if parsed.userinfo:
        raise Refused("image URLs with a user name or password are not fetched")
    if not parsed.host:
        raise Refused("an image URL in the request has no host")
    return parsed


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address of `host`. The system resolver also reads IP literals in the forms inet_aton accepts
    (2130706433, 0x7f000001, 127.1), so they are checked as the address they really are."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise httpx.ConnectError(f"cannot resolve {host}") from None
    return [ipaddress.ip_address(str(sockaddr[0]).partition("%")[0]) for *_, sockaddr in found]


async def checked_address(url: httpx.URL) -> IPAddress:
    """The address to connect to for `url`, once every address of its host has passed the policy."""
    addresses = await resolve(url.raw_host.decode("ascii"), url.port or DEFAULT_PORTS[url.scheme])
    if not addresses:
        raise httpx.ConnectError(f"no address for {url.host}")
    if not settings.IMAGE_FETCH_ALLOW_PRIVATE and not all(is_public(address) for address in addresses):
        raise Refused(
            "an image URL in the request points to a private, loopback, link-local or reserved address; "
            "the gateway fetches images from public hosts only"
        )
    return addresses[0]


def pinned_request(client: httpx.AsyncClient, url: httpx.URL, address: IPAddress) -> httpx.Request:
    """A GET of `url` that connects to `address`; Host and the TLS server name (SNI, certificate check) stay
    the URL's own host."""
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    return client.build_request(
        "GET",
        url.copy_with(host=str(address)),
        headers={"Host": url.netloc.decode("ascii")},
        extensions=extensions,
    )


@asynccontextmanager
async def get(url: str) -> AsyncIterator[httpx.Response]:
    """The streamed answer to GET `url` after at most MAX_REDIRECTS redirects, every hop checked.
    Raises Refused for a URL the policy forbids, httpx.HTTPError when the host cannot be reached."""
    target = parse(url)
    client = upstream.client()
    for _ in range(MAX_REDIRECTS + 1):
        request = pinned_request(client, target, await checked_address(target))
        response = await client.send(request, stream=True)
        try:
            if not response.is_redirect:
                yield response
                return
            target = parse(str(target.join(response.headers["Location"])))
        finally:
            await upstream.close(response)
    raise Refused(f"an image URL in the request redirects more than {MAX_REDIRECTS} times")
