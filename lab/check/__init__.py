"""The check phase of a lab: start each tunnel, decide up or down, gather evidence, explain.

- ``scripts``: the per-tunnel up-check and evidence scripts rendered into each client;
- ``run``: runs them on a lab (``check_tunnels``), in parallel within the runtime's limit;
- ``evidence``: the typed evidence (router conntrack entries and rule hits, client and
  server sections) that protocols read in ``Protocol.diagnose``;
- ``explain``: the verdict in words; ``results``: TunnelResult and RunResult (the JSON).

Nothing is imported here: protocols import ``lab.check.evidence`` while the registry is
being built, and ``run`` imports the registry.
"""
