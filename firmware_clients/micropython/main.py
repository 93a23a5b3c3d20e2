# Board entry point (ESP32 / Pico W): Wi-Fi, then the Outpost loop forever.
#
# Reads two files copied next to it: outpost.json (the output of
# `outpost device add ID --json`) and wifi.json ({"ssid": ..., "password": ...}).
# The queue and counter live in /outpost on the board's flash.

import json
import sys
import time

import network
import sensor
from machine import Pin
from outpost_client import Device
from outpost_loop import Runner

DATA_DIR = "/outpost"
WIFI_TIMEOUT_S = 30
INTERVAL_S = 60  # until the gateway's config says otherwise (its "interval_s")


def load(name):
    with open(name) as f:
        return json.load(f)


def connect_wifi(settings):
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        print("wifi: joining", settings["ssid"])
        wlan.connect(settings["ssid"], settings["password"])
        deadline = time.time() + WIFI_TIMEOUT_S
        while not wlan.isconnected() and time.time() < deadline:
            time.sleep(0.5)
    print("wifi:", wlan.ifconfig() if wlan.isconnected() else "not connected (retrying later)")


def status_led():
    try:
        return Pin("LED", Pin.OUT)  # Pico W (and boards that name their LED)
    except (TypeError, ValueError):
        return Pin(2, Pin.OUT) if sys.platform == "esp32" else None  # most ESP32 devkits


def main():
    credentials = load("outpost.json")
    settings = load("wifi.json")
    connect_wifi(settings)
    device = Device(credentials, DATA_DIR)
    runner = Runner(device, sensor.read, interval_s=INTERVAL_S, led=status_led())
    runner.run_forever()


main()
