"""Data vpnlab ships: its sub-packages are the repository's top-level folders.

``lab._data.images`` is ``images/``, ``lab._data.topologies`` is ``topologies/``
and ``lab._data.profiles`` is ``profiles/`` (once it exists), mapped by
setup.py so the repository keeps its layout and a wheel still holds them.
Read them through :mod:`lab.resources`, never by path from here.
"""
