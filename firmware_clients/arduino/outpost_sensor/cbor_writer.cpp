#include "cbor_writer.h"

#include <string.h>

static_assert(sizeof(double) == 8, "float64 needs a 64-bit double (ESP32 has one; AVR does not)");

namespace outpost {

namespace {
const uint8_t kMajorUnsigned = 0;
const uint8_t kMajorNegative = 1;
const uint8_t kMajorBytes = 2;
const uint8_t kMajorText = 3;
const uint8_t kMajorArray = 4;
const uint8_t kMajorMap = 5;
const uint8_t kFalse = 0xf4, kTrue = 0xf5, kNull = 0xf6, kFloat64 = 0xfb;
}  // namespace

CborWriter::CborWriter(uint8_t* buffer, size_t capacity)
    : buffer_(buffer), capacity_(capacity), length_(0), ok_(true) {}

void CborWriter::reset() {
  length_ = 0;
  ok_ = true;
}

void CborWriter::put(const uint8_t* data, size_t length) {
  if (!ok_ || length > capacity_ - length_) {
    ok_ = false;
    return;
  }
  memcpy(buffer_ + length_, data, length);
  length_ += length;
}

// RFC 8949 section 3: the argument inline below 24, else in 1, 2, 4 or 8 big-endian bytes
// (additional information 24, 25, 26, 27).
void CborWriter::head(uint8_t major, uint64_t argument) {
  uint8_t out[9];
  size_t width;
  uint8_t top = static_cast<uint8_t>(major << 5);
  if (argument < 24) {
    putByte(static_cast<uint8_t>(top | argument));
    return;
  } else if (argument <= 0xff) {
    out[0] = top | 24;
    width = 1;
  } else if (argument <= 0xffff) {
    out[0] = top | 25;
    width = 2;
  } else if (argument <= 0xffffffffULL) {
    out[0] = top | 26;
    width = 4;
  } else {
    out[0] = top | 27;
    width = 8;
  }
  for (size_t i = 0; i < width; ++i) {
    out[width - i] = static_cast<uint8_t>(argument >> (8 * i));
  }
  put(out, width + 1);
}

void CborWriter::beginMap(size_t pairs) { head(kMajorMap, pairs); }

void CborWriter::beginArray(size_t items) { head(kMajorArray, items); }

void CborWriter::text(const char* text) { this->text(text, strlen(text)); }

void CborWriter::text(const char* text, size_t length) {
  head(kMajorText, length);
  put(reinterpret_cast<const uint8_t*>(text), length);
}

void CborWriter::bytes(const uint8_t* data, size_t length) {
  head(kMajorBytes, length);
  put(data, length);
}

void CborWriter::integer(int64_t value) {
  if (value > kMaxInt || value < -kMaxInt) {
    ok_ = false;  // the gateway refuses it: send big counters as text
    return;
  }
  if (value >= 0) {
    head(kMajorUnsigned, static_cast<uint64_t>(value));
  } else {
    head(kMajorNegative, static_cast<uint64_t>(-1 - value));  // major 1 holds -1 - n
  }
}

void CborWriter::number(double value) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof bits);  // IEEE 754 binary64 on every target we build for
  uint8_t out[9];
  out[0] = kFloat64;
  for (int i = 0; i < 8; ++i) {
    out[8 - i] = static_cast<uint8_t>(bits >> (8 * i));
  }
  put(out, sizeof out);
}

void CborWriter::boolean(bool value) { putByte(value ? kTrue : kFalse); }

void CborWriter::null() { putByte(kNull); }

}  // namespace outpost
