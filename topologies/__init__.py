"""This folder ships inside the vpnlab wheel as the package ``lab._data.topologies``.

setup.py maps it there; lab/resources.py finds it through importlib.resources,
for a wheel and an editable install alike (this file is what lets an editable
install import the folder). It is no part of any image's build context.
"""
