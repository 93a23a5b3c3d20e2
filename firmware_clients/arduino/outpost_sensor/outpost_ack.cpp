#include "outpost_ack.h"

#include <string.h>

namespace outpost {

namespace {

struct Cursor {
  const char* at;
  const char* end;

  void skipSpace() {
    while (at < end && (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r')) ++at;
  }
  bool take(char c) {
    skipSpace();
    if (at < end && *at == c) {
      ++at;
      return true;
    }
    return false;
  }
};

// A JSON string without escapes (the only keys we look for have none); its bounds.
bool readString(Cursor* c, const char** start, size_t* length) {
  if (!c->take('"')) return false;
  *start = c->at;
  while (c->at < c->end && *c->at != '"') {
    if (*c->at == '\\') return false;
    ++c->at;
  }
  if (c->at >= c->end) return false;
  *length = static_cast<size_t>(c->at - *start);
  ++c->at;
  return true;
}

// A non-negative integer below 2^63 (an integral "7.0" too, as the gateway accepts).
bool readInteger(Cursor* c, int64_t* value) {
  c->skipSpace();
  const char* first = c->at;
  uint64_t n = 0;
  while (c->at < c->end && *c->at >= '0' && *c->at <= '9') {
    if (n > (UINT64_C(0x7fffffffffffffff) - 9) / 10) return false;
    n = n * 10 + static_cast<uint64_t>(*c->at - '0');
    ++c->at;
  }
  if (c->at == first) return false;
  if (c->at < c->end && *c->at == '.') {
    ++c->at;
    while (c->at < c->end && *c->at == '0') ++c->at;
  }
  *value = static_cast<int64_t>(n);
  return true;
}

// Skips a scalar value of a field we do not read (strings without escapes, numbers,
// true/false/null); nested objects and arrays are refused.
bool skipValue(Cursor* c) {
  c->skipSpace();
  if (c->at < c->end && *c->at == '"') {
    const char* s;
    size_t n;
    return readString(c, &s, &n);
  }
  const char* first = c->at;
  while (c->at < c->end && *c->at != ',' && *c->at != '}' && *c->at != '{' && *c->at != '[') ++c->at;
  return c->at > first && c->at < c->end && *c->at != '{' && *c->at != '[';
}

bool keyIs(const char* key, size_t length, const char* name) {
  return length == strlen(name) && memcmp(key, name, length) == 0;
}

}  // namespace

bool parseAck(const char* json, size_t length, int64_t* boot, int64_t* seq) {
  Cursor c = {json, json + length};
  bool haveBoot = false, haveSeq = false;
  if (!c.take('{')) return false;
  if (c.take('}')) return false;
  do {
    const char* key;
    size_t keyLength;
    if (!readString(&c, &key, &keyLength) || !c.take(':')) return false;
    if (keyIs(key, keyLength, "boot")) {
      haveBoot = readInteger(&c, boot);
      if (!haveBoot) return false;
    } else if (keyIs(key, keyLength, "seq")) {
      haveSeq = readInteger(&c, seq);
      if (!haveSeq) return false;
    } else if (!skipValue(&c)) {
      return false;
    }
  } while (c.take(','));
  if (!c.take('}')) return false;
  c.skipSpace();
  return c.at == c.end && haveBoot && haveSeq;
}

}  // namespace outpost
