"""Scenario steps: checks, waits, flushes, commands and router changes run in order after a lab
is up (issue 11).

``model`` holds the topology's ``steps:`` (imported by ``lab.topology.model``, so it imports
nothing of the lab at load time), ``probe`` the shell that re-probes a tunnel already up,
``router_change`` the ``router:`` step's merge, checks and shell, ``runner`` runs the steps
on a lab, ``results`` is their JSON and terminal shape.
"""
