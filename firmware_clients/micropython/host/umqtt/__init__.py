"""CPython stand-in for MicroPython's umqtt package (see simple.py)."""
