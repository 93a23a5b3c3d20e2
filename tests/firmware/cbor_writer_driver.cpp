// Test driver for the Arduino sketch's CborWriter and parseAck (tests/firmware).
//
// Reads commands from stdin, one a line, and writes the results to stdout:
//   capacity N            the next items go into a fresh writer of N bytes
//   map N | array N       a head for N pairs / items
//   text HEX | bytes HEX  a text / byte string given as hex (may be empty)
//   int N                 an integer (decimal)
//   float HEX16           a float64 given by its IEEE 754 bits
//   true | false | null
//   end                   print the bytes written as hex, or "error" if !ok(); reset
//   ack HEX               print "BOOT SEQ" if parseAck accepts the text, else "none"
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cbor_writer.h"
#include "outpost_ack.h"

namespace {

std::vector<uint8_t> fromHex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

void printHex(const uint8_t* data, size_t length) {
  for (size_t i = 0; i < length; ++i) std::printf("%02x", data[i]);
  std::printf("\n");
}

}  // namespace

int main() {
  std::vector<uint8_t> buffer(1 << 20);
  outpost::CborWriter writer(buffer.data(), buffer.size());
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string command, argument;
    in >> command >> argument;
    if (command == "capacity") {
      writer = outpost::CborWriter(buffer.data(), std::stoul(argument));
    } else if (command == "map") {
      writer.beginMap(std::stoul(argument));
    } else if (command == "array") {
      writer.beginArray(std::stoul(argument));
    } else if (command == "text") {
      std::vector<uint8_t> text = fromHex(argument);
      writer.text(reinterpret_cast<const char*>(text.data()), text.size());
    } else if (command == "bytes") {
      std::vector<uint8_t> data = fromHex(argument);
      writer.bytes(data.data(), data.size());
    } else if (command == "int") {
      writer.integer(std::stoll(argument));
    } else if (command == "float") {
      uint64_t bits = std::stoull(argument, nullptr, 16);
      double value;
      std::memcpy(&value, &bits, sizeof value);
      writer.number(value);
    } else if (command == "true" || command == "false") {
      writer.boolean(command == "true");
    } else if (command == "null") {
      writer.null();
    } else if (command == "end") {
      if (writer.ok()) {
        printHex(writer.data(), writer.size());
      } else {
        std::printf("error\n");
      }
      writer = outpost::CborWriter(buffer.data(), buffer.size());
    } else if (command == "ack") {
      std::vector<uint8_t> text = fromHex(argument);
      int64_t boot = 0, seq = 0;
      if (outpost::parseAck(reinterpret_cast<const char*>(text.data()), text.size(), &boot, &seq)) {
        std::printf("%lld %lld\n", static_cast<long long>(boot), static_cast<long long>(seq));
      } else {
        std::printf("none\n");
      }
    } else {
      std::fprintf(stderr, "unknown command: %s\n", line.c_str());
      return 2;
    }
  }
  return 0;
}
