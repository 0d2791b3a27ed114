"""Scenario steps: checks, waits, flushes and commands run in order after a lab is up (issue 11).

``model`` holds the topology's ``steps:`` (imported by ``lab.topology.model``, so it imports
nothing of the lab), ``probe`` the shell that re-probes a tunnel already up, ``runner`` runs
the steps on a lab, ``results`` is their JSON and terminal shape.
"""
