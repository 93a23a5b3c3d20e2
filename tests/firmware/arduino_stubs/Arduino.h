// Declarations only: the parts of the ESP32 Arduino core that outpost_sensor.ino uses, so
// that the test suite can compile the sketch on a host (tests/firmware/test_cbor_arduino.py).
// Nothing here is linked or run; a wrong call in the sketch fails to compile.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <string>

using std::max;
using std::min;
typedef uint8_t byte;
#define HIGH 1
#define LOW 0
#define OUTPUT 1

uint32_t millis();
void delay(uint32_t ms);
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);
float temperatureRead();
uint32_t esp_random();

class HardwareSerial {
 public:
  void begin(unsigned long baud);
  size_t printf(const char* format, ...) __attribute__((format(printf, 2, 3)));
  size_t println(const char* text);
};
extern HardwareSerial Serial;

class String {
 public:
  String(const char* text, unsigned int length);
  int indexOf(const char* text, unsigned int from = 0) const;
  int indexOf(char c, unsigned int from = 0) const;
  const char* c_str() const;
};
