# The reading a device sends: edit read() for your sensor (it returns a dict or None).
#
# The default reads the microcontroller's own temperature so that a bare board works:
# the Pico W's ADC channel 4, or the ESP32's internal sensor (both rough, a few degrees).
# The greenhouse example app expects {"celsius": float, "humidity": float (optional)}.

import sys


def read():
    if sys.platform == "rp2":
        from machine import ADC

        volts = ADC(4).read_u16() * 3.3 / 65535
        return {"celsius": 27 - (volts - 0.706) / 0.001721}  # RP2040 datasheet, 4.9.5
    if sys.platform == "esp32":
        import esp32

        return {"celsius": (esp32.raw_temperature() - 32) / 1.8}  # it reports Fahrenheit
    return {"celsius": 21.5}  # elsewhere (CPython): a constant
