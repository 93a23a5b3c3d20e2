// A small CBOR encoder (RFC 8949) for readings: maps, arrays, text, bytes, integers,
// float64, booleans and null, written into a caller's buffer (no heap, no Arduino
// headers, so the test suite compiles and checks it on the host with g++).
//
// Maps and arrays are announced with their item count (definite lengths): the gateway
// reads one CBOR data item with nothing after it. Integers must stay within +-2^53, as
// the gateway refuses larger ones rather than round them (docs/mqtt.md). Any error (a
// full buffer, an integer out of range) makes ok() false and the writer stops writing.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace outpost {

class CborWriter {
 public:
  static const int64_t kMaxInt = 9007199254740992LL;  // 2^53

  CborWriter(uint8_t* buffer, size_t capacity);

  void beginMap(size_t pairs);  // then `pairs` key/value items
  void beginArray(size_t items);
  void key(const char* text) { this->text(text); }
  void text(const char* text);  // NUL-terminated UTF-8
  void text(const char* text, size_t length);
  void bytes(const uint8_t* data, size_t length);
  void integer(int64_t value);
  void number(double value);  // always float64: exact for every double
  void boolean(bool value);
  void null();

  bool ok() const { return ok_; }
  size_t size() const { return length_; }
  const uint8_t* data() const { return buffer_; }
  void reset();

 private:
  void head(uint8_t major, uint64_t argument);
  void put(const uint8_t* data, size_t length);
  void putByte(uint8_t byte) { put(&byte, 1); }

  uint8_t* buffer_;
  size_t capacity_;
  size_t length_;
  bool ok_;
};

}  // namespace outpost
