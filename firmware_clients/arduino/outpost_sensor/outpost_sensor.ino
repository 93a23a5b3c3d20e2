// Outpost sensor for ESP32 (Arduino core 2.x or 3.x) with PubSubClient.
//
// Sends a CBOR reading every interval to greenhouse/<device>/reading with two extra
// fields, seq (1, 2, 3 ... in a boot) and boot (random, chosen once when the flash has no
// counter). Each reading is kept in flash (LittleFS, /q/<seq>) until the gateway's ack,
// published retained on outpost/ack/<device> as {"boot": b, "seq": n}, covers it.
//
// PubSubClient publishes at QoS 0 only: the broker's PUBACK is not there to say a reading
// arrived, and Mosquitto does not queue QoS 0 messages for the gateway while it is away.
// The ack topic is what makes delivery reliable: after every reconnect, and whenever acks
// stop advancing for ACK_TIMEOUT_MS while readings wait, every uncovered reading is sent
// again, oldest first. Resending is safe: the gateway dedupes by (device, boot, seq).
//
// Credentials go in secrets.h (copy secrets.example.h); see README.md.

#include <Arduino.h>
#include <LittleFS.h>
#include <Preferences.h>
#include <PubSubClient.h>
#include <WiFi.h>

#include "cbor_writer.h"
#include "outpost_ack.h"
#include "secrets.h"

// --- settings ---------------------------------------------------------------------------
static const uint32_t DEFAULT_INTERVAL_MS = 60000;  // until the config says "interval_s"
static const uint32_t ACK_TIMEOUT_MS = 30000;       // resend when acks stall this long
static const uint32_t RETRY_FIRST_MS = 1000;        // reconnect backoff, doubling ...
static const uint32_t RETRY_MAX_MS = 60000;         // ... up to this
static const uint32_t MAX_QUEUE = 500;              // readings kept unacked; then drop oldest
static const uint32_t SENDS_PER_LOOP = 10;          // keep loop() responsive while draining
static const int LED_PIN = 2;                       // most ESP32 devkits; lit while connected
static const uint16_t MQTT_BUFFER_BYTES = 512;      // a reading, an ack, a config
static const uint32_t MAX_BOOT = 2147483647UL;      // boot is in 1 .. 2^31-1

// --- state --------------------------------------------------------------------------------
WiFiClient net;
PubSubClient mqtt(net);
Preferences prefs;  // NVS (wear-levelled): boot, seq, dropped

char readingTopic[128], configTopic[128], ackTopic[128];
uint32_t boot = 0;
uint32_t seq = 0;         // the newest reading made
uint32_t first = 1;       // the oldest queued reading (the queue is first..seq, none if first > seq)
uint32_t sent = 0;        // the newest seq sent since the last (re)connect or resend
uint32_t dropped = 0;     // readings dropped unacked because the queue was full
uint32_t intervalMs = DEFAULT_INTERVAL_MS;
uint32_t nextSampleAt = 0, retryAt = 0, retryMs = RETRY_FIRST_MS, lastAckAt = 0;

// --- the flash queue -------------------------------------------------------------------------

void queuePath(uint32_t n, char* out, size_t size) { snprintf(out, size, "/q/%010lu", (unsigned long)n); }

void removeQueued(uint32_t n) {
  char path[24];
  queuePath(n, path, sizeof path);
  LittleFS.remove(path);
}

bool readQueued(uint32_t n, uint8_t* buffer, size_t size, size_t* length) {
  char path[24];
  queuePath(n, path, sizeof path);
  File f = LittleFS.open(path, "r");
  if (!f) return false;
  *length = f.read(buffer, size);
  f.close();
  return *length > 0;
}

void saveCounter() {
  prefs.putUInt("boot", boot);
  prefs.putUInt("seq", seq);
  prefs.putUInt("dropped", dropped);
}

// Loads (boot, seq) or starts a new boot; finds the queued range on flash.
void loadState() {
  LittleFS.mkdir("/q");
  uint32_t lowest = UINT32_MAX, highest = 0;
  File dir = LittleFS.open("/q");
  for (File f = dir.openNextFile(); f; f = dir.openNextFile()) {
    uint32_t n = strtoul(f.name() + (f.name()[0] == '/' ? 3 : 0), nullptr, 10);
    f.close();
    if (n < lowest) lowest = n;
    if (n > highest) highest = n;
  }
  prefs.begin("outpost", false);
  if (!prefs.isKey("boot")) {  // first start or flash wiped: a new boot
    boot = 1 + esp_random() % MAX_BOOT;
    for (uint32_t n = lowest; highest && n <= highest; ++n) removeQueued(n);  // of a lost boot
    lowest = UINT32_MAX;
    highest = 0;
    seq = 0;
    saveCounter();
  } else {
    boot = prefs.getUInt("boot");
    seq = max(prefs.getUInt("seq"), highest);  // a file written just before a power cut
    dropped = prefs.getUInt("dropped", 0);
  }
  first = highest ? lowest : seq + 1;
  Serial.printf("outpost: boot %lu, seq %lu, %lu queued, %lu dropped\n", (unsigned long)boot,
                (unsigned long)seq, (unsigned long)(seq + 1 - first), (unsigned long)dropped);
}

// Writes a reading to flash under the next seq (the file first, then the counter).
void record(float celsius) {
  uint8_t buffer[128];
  outpost::CborWriter cbor(buffer, sizeof buffer);
  cbor.beginMap(3);
  cbor.key("celsius");
  cbor.number(celsius);
  cbor.key("seq");
  cbor.integer(seq + 1);
  cbor.key("boot");
  cbor.integer(boot);
  if (!cbor.ok()) return;
  if (seq + 1 - first >= MAX_QUEUE) {  // full: drop the oldest, and count it
    removeQueued(first++);
    dropped++;
  }
  char path[24];
  queuePath(seq + 1, path, sizeof path);
  File f = LittleFS.open(path, "w");
  if (!f) return;
  f.write(cbor.data(), cbor.size());
  f.close();
  seq++;
  saveCounter();
}

// --- MQTT ------------------------------------------------------------------------------------

void onAck(const char* text, size_t length) {
  int64_t ackBoot, ackSeq;
  if (!outpost::parseAck(text, length, &ackBoot, &ackSeq)) return;  // cleared or not an ack
  if (ackBoot != (int64_t)boot) return;  // another boot's ack covers none of ours
  if (first <= seq && (int64_t)first <= ackSeq) lastAckAt = millis();  // acks advance
  while (first <= seq && (int64_t)first <= ackSeq) removeQueued(first++);
}

void onConfig(const char* text, size_t length) {
  if (length == 0) {
    Serial.println("outpost: config cleared");
    return;
  }
  String json(text, length);
  int at = json.indexOf("\"interval_s\"");
  if (at >= 0 && (at = json.indexOf(':', at)) >= 0) {
    double seconds = strtod(json.c_str() + at + 1, nullptr);
    if (seconds > 0) intervalMs = (uint32_t)(seconds * 1000);
  }
  Serial.printf("outpost: config %s (interval %lu ms)\n", json.c_str(), (unsigned long)intervalMs);
}

void onMessage(char* topic, byte* payload, unsigned int length) {
  if (strcmp(topic, ackTopic) == 0) {
    onAck((const char*)payload, length);
  } else if (strcmp(topic, configTopic) == 0) {
    onConfig((const char*)payload, length);
  }
}

bool connectMqtt() {
  Serial.printf("outpost: connecting to %s:%d as %s\n", OUTPOST_HOST, OUTPOST_PORT, OUTPOST_DEVICE);
  if (!mqtt.connect(OUTPOST_DEVICE, OUTPOST_DEVICE, OUTPOST_PASSWORD)) {
    Serial.printf("outpost: refused or unreachable (state %d)\n", mqtt.state());
    return false;
  }
  mqtt.subscribe(ackTopic, 1);  // retained: the newest ack arrives at once
  mqtt.subscribe(configTopic, 1);
  sent = first - 1;  // resend every uncovered reading, oldest first
  lastAckAt = millis();
  Serial.println("outpost: connected");
  return true;
}

// Sends up to SENDS_PER_LOOP queued readings not sent since the last (re)connect.
void pump() {
  if (first > seq) {
    lastAckAt = millis();  // nothing waits for an ack
    return;
  }
  if (sent == seq && millis() - lastAckAt > ACK_TIMEOUT_MS) {
    Serial.println("outpost: no ack lately, resending");
    sent = first - 1;
    lastAckAt = millis();
  }
  uint8_t buffer[256];
  for (uint32_t i = 0; i < SENDS_PER_LOOP && sent < seq && mqtt.connected(); ++i) {
    uint32_t next = max(sent + 1, first);
    size_t length;
    if (readQueued(next, buffer, sizeof buffer, &length) && !mqtt.publish(readingTopic, buffer, length)) {
      return;  // the connection broke: resent after the reconnect
    }
    sent = next;
  }
}

// --- Arduino -----------------------------------------------------------------------------------

void setup() {
  Serial.begin(115200);
  pinMode(LED_PIN, OUTPUT);
  if (!LittleFS.begin(true)) Serial.println("outpost: LittleFS failed, readings are not kept");
  snprintf(readingTopic, sizeof readingTopic, "greenhouse/%s/reading", OUTPOST_DEVICE);
  snprintf(configTopic, sizeof configTopic, "greenhouse/%s/config", OUTPOST_DEVICE);
  snprintf(ackTopic, sizeof ackTopic, "outpost/ack/%s", OUTPOST_DEVICE);
  loadState();
  WiFi.mode(WIFI_STA);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  mqtt.setServer(OUTPOST_HOST, OUTPOST_PORT);
  mqtt.setCallback(onMessage);
  mqtt.setBufferSize(MQTT_BUFFER_BYTES);
}

void loop() {
  uint32_t now = millis();
  if ((int32_t)(now - nextSampleAt) >= 0) {
    nextSampleAt = now + intervalMs;
    record(temperatureRead());  // the ESP32's own sensor; put yours here
  }
  if (WiFi.status() == WL_CONNECTED && !mqtt.connected() && (int32_t)(now - retryAt) >= 0) {
    if (connectMqtt()) {
      retryMs = RETRY_FIRST_MS;
    } else {
      retryAt = now + retryMs;
      retryMs = min(retryMs * 2, RETRY_MAX_MS);
    }
  }
  digitalWrite(LED_PIN, mqtt.connected() ? HIGH : LOW);
  if (mqtt.connected()) {
    mqtt.loop();  // acks and configs arrive in onMessage
    pump();
  }
  delay(10);
}
