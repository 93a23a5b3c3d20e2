"""MQTT routes: sensors publish readings; each device reads its own config."""

from gateway import mqtt_router

mqtt = mqtt_router()

# A sensor publishes {"celsius": 21.5, "humidity": 40, "seq": 17, "boot": 3} (CBOR or
# JSON) on greenhouse/<its ID>/reading; the topic names the device.
mqtt.ingest("greenhouse/{device}/reading", "readings:ingest", payload="auto")

# Each device's row of devices:configs, retained on greenhouse/<its ID>/config.
mqtt.publish("greenhouse/{device}/config", query="devices:configs", each=True)
