// Reading the gateway's ack, {"boot": b, "seq": n}, published retained on
// outpost/ack/{device}: every reading of boot b with seq <= n is durable on the gateway.
// A tiny parser for exactly that object (no JSON library needed), host-compilable so the
// test suite checks it with g++ beside the CBOR writer.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace outpost {

// True and the two numbers when `json` is an object with integer "boot" and "seq"
// (other fields are skipped); false for anything else, an empty (cleared) ack included.
bool parseAck(const char* json, size_t length, int64_t* boot, int64_t* seq);

}  // namespace outpost
