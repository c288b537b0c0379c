// Internal to data/: a stream's source files with their sizes and modification times, the key by
// which the field-count cache and the binary data cache tell whether their files changed.
#pragma once

#include <nlohmann/json.hpp>

#include "ember/common/status.h"
#include "ember/data/criteo.h"

namespace ember::data {

// [[path, size, mtime_ns], ...] for every file `options` names (DataFiles).
Result<nlohmann::json> SourcesJson(const CriteoOptions& options);

}  // namespace ember::data
