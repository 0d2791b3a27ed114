"""The typed topology model: what a user writes, validated, with its address plan."""

from lab.topology.addressing import AddressPlan, plan_addresses
from lab.topology.load import load_topology, parse_topology
from lab.topology.model import Client, Router, Server, Topology, Tunnel

__all__ = [
    "AddressPlan",
    "Client",
    "Router",
    "Server",
    "Topology",
    "Tunnel",
    "load_topology",
    "parse_topology",
    "plan_addresses",
]
