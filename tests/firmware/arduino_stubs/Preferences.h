// Declarations only (see Arduino.h here): the ESP32 core's NVS Preferences.
#pragma once
#include <Arduino.h>

class Preferences {
 public:
  bool begin(const char* name, bool readOnly = false);
  bool isKey(const char* key);
  uint32_t getUInt(const char* key, uint32_t defaultValue = 0);
  size_t putUInt(const char* key, uint32_t value);
};
