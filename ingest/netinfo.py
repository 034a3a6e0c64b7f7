"""Client address handling: the full IP never leaves this module."""
from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=4096)  # a beacon's requests come from a few addresses; parsing one cost ~6 us
def truncate_ip(ip: str) -> str:
    """IPv4 -> /24, IPv6 -> /48 (the network, not the host); unparseable -> ''."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)


def client_ip(peer: str | None, forwarded_for: str | None, trust_proxy: bool) -> str:
    if trust_proxy and forwarded_for:
        return forwarded_for.split(",")[0].strip()
    return peer or ""
