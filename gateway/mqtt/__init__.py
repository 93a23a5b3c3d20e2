"""MQTT: the managed broker's files, routes, the bridge (issue 9)."""
