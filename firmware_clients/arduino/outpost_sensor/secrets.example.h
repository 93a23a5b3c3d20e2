// Copy to secrets.h (kept out of git) and fill in. OUTPOST_* come from
// `outpost device add ID --json`: device, password, host, port.
#pragma once

#define WIFI_SSID "your-wifi"
#define WIFI_PASSWORD "your-wifi-password"

#define OUTPOST_DEVICE "greenhouse-1"               // "device" (also the MQTT username)
#define OUTPOST_PASSWORD "paste-the-password-here"  // "password", shown once by outpost
#define OUTPOST_HOST "192.168.1.20"                 // the gateway's LAN address
#define OUTPOST_PORT 1883                           // "port"
