"""Running labs on a Docker engine: connect, create, wire, exec, tear down."""
