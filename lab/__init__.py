"""vpnlab: prove which VPN tunnels come up through which NAT router configuration."""

__version__ = "0.1.0"
