"""Running labs on a Docker engine: which engine (registry, base), connect, create, wire, exec, tear down."""
