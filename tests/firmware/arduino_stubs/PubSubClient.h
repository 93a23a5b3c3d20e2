// Declarations only (see Arduino.h here): PubSubClient 2.8's methods the sketch calls.
#pragma once
#include <Arduino.h>
#include <WiFi.h>

class PubSubClient {
 public:
  explicit PubSubClient(WiFiClient& client);
  PubSubClient& setServer(const char* domain, uint16_t port);
  PubSubClient& setCallback(void (*callback)(char*, uint8_t*, unsigned int));
  bool setBufferSize(uint16_t size);
  bool connect(const char* id, const char* user, const char* pass);
  int state();
  bool subscribe(const char* topic, uint8_t qos);
  bool publish(const char* topic, const uint8_t* payload, unsigned int length);
  bool connected();
  bool loop();
};
