"""pytest plugin for vpnlab (fixtures arrive in the next commit)."""
