# Router profiles shipped with vpnlab (packaged as lab._data.profiles; see lab/profiles.py).
