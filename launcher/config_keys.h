// Internal to launcher/: the declared config keys (config_keys.cc), read by config.cc.
#pragma once

#include <toml++/toml.h>

#include <functional>
#include <string>
#include <vector>

#include "ember/launcher/config.h"

namespace ember::launcher {

// How a key reads its TOML value into its field, and shows the field's value as TOML.
struct Binding {
  std::function<Status(const toml::node&, RunConfig*)> set;
  std::function<std::string(const RunConfig&)> show;  // empty: no plain value (tables)
};

struct ConfigKey {
  const char* name;
  const char* type;
  const char* default_text;  // as docs/config.md shows it
  const char* doc;
  Binding bind;
};

const std::vector<ConfigKey>& ConfigKeys();
const ConfigKey* FindConfigKey(const std::string& name);

}  // namespace ember::launcher
