// Declarations only (see Arduino.h here): the ESP32 core's LittleFS as the sketch uses it.
#pragma once
#include <Arduino.h>

class File {
 public:
  explicit operator bool() const;
  const char* name() const;
  void close();
  size_t read(uint8_t* buffer, size_t size);
  size_t write(const uint8_t* buffer, size_t size);
  File openNextFile(const char* mode = "r");
};

class LittleFSFS {
 public:
  bool begin(bool formatOnFail = false);
  bool mkdir(const char* path);
  File open(const char* path, const char* mode = "r");
  bool remove(const char* path);
};
extern LittleFSFS LittleFS;
