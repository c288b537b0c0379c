// Process facts for reports: resident memory now and at its peak.
#pragma once

#include <cstdint>

namespace ember {

// Peak resident set size of this process in bytes (VmHWM), 0 if unknown.
uint64_t PeakRssBytes();
// Current resident set size in bytes (VmRSS), 0 if unknown.
uint64_t CurrentRssBytes();

}  // namespace ember
