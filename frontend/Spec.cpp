//===- Spec.cpp - spec files: reading, JSON, sections, hf_config ---------===//
//
// The entry points loadSpec()/parseSpec() and everything that is not about
// one section's meaning: reading files, JSON syntax (with line and column),
// duplicate keys, the top-level keys, merging `model` with its `hf_config`
// file, and the typed-field helpers of SpecJson.h. The `model` section is
// interpreted in SpecModel.cpp, `train`/`parallel`/`target` in SpecRecipe.cpp.
//
//===----------------------------------------------------------------------===//

#include "frontend/Spec.h"
#include "frontend/SpecJson.h"
#include "runtime/io/OneLine.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace kiln::frontend {
namespace detail {

//===----------------------------------------------------------------------===//
// Messages
//===----------------------------------------------------------------------===//

void fail(const std::string &file, const std::string &field,
          const std::string &what) {
  std::string msg = file.empty() ? std::string("<spec>") : file;
  if (!field.empty())
    msg += ": " + field;
  msg += ": " + what;
  // Keys and strings come from the user's file.
  throw SpecFailure{io::oneLine(msg)};
}

std::string formatNumber(double value) {
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value)
      break;
  }
  return buf;
}

std::string describe(const Json &value) {
  switch (value.type()) {
  case Json::value_t::null:
    return "null";
  case Json::value_t::boolean:
    return value.get<bool>() ? "true" : "false";
  case Json::value_t::number_integer:
    return "integer " + std::to_string(value.get<int64_t>());
  case Json::value_t::number_unsigned:
    return "integer " + std::to_string(value.get<uint64_t>());
  case Json::value_t::number_float: {
    std::string s = formatNumber(value.get<double>());
    if (s.find_first_of(".eEn") == std::string::npos)
      s += ".0"; // "found float 64.0; expected an integer"
    return "float " + s;
  }
  case Json::value_t::string: {
    std::string s = value.get<std::string>();
    if (s.size() > 40)
      s = s.substr(0, 37) + "...";
    return "string \"" + s + "\"";
  }
  case Json::value_t::array:
    return "an array";
  case Json::value_t::object:
    return "an object";
  default:
    return "an unsupported value";
  }
}

/// Optimal-string-alignment distance, case-insensitive: insertions,
/// deletions, substitutions and adjacent transpositions ("optmiizer") each
/// cost one edit.
static size_t editDistance(const std::string &a, const std::string &b) {
  auto same = [&](size_t i, size_t j) {
    return std::tolower((unsigned char)a[i]) == std::tolower((unsigned char)b[j]);
  };
  std::vector<std::vector<size_t>> d(a.size() + 1,
                                     std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i)
    d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j)
    d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + !same(i - 1, j - 1)});
      if (i > 1 && j > 1 && same(i - 1, j - 2) && same(i - 2, j - 1))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string closestKey(const std::string &key,
                       const std::vector<std::string> &candidates) {
  std::string best;
  size_t bestDistance = std::numeric_limits<size_t>::max();
  for (const std::string &c : candidates) {
    size_t d = editDistance(key, c);
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  // A plausible typo: at most a third of the longer word changed, at least 2.
  size_t allowed = std::max<size_t>(2, std::max(key.size(), best.size()) / 3);
  if (bestDistance <= allowed)
    return best;
  // Or a truncation: "noaux" for "noaux_tc".
  for (const std::string &c : candidates)
    if (key.size() >= 3 && c.size() > key.size() &&
        editDistance(key, c.substr(0, key.size())) == 0)
      return c;
  return "";
}

std::string quotedList(const std::vector<std::string> &items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i)
      out += i + 1 == items.size() ? " or " : ", ";
    out += "'" + items[i] + "'";
  }
  return out;
}

std::string unknownKeyMessage(const std::string &key,
                              const std::vector<std::string> &candidates) {
  std::string guess = closestKey(key, candidates);
  if (!guess.empty())
    return "unknown key; did you mean '" + guess + "'?";
  if (candidates.size() <= 12)
    return "unknown key; expected " + quotedList(candidates);
  return "unknown key; Kiln does not know it and will not guess what it means "
         "(remove it, or check its spelling)";
}

//===----------------------------------------------------------------------===//
// Files and JSON text
//===----------------------------------------------------------------------===//

std::string directoryOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string joinPath(const std::string &dir, const std::string &relative) {
  if (dir.empty() || (!relative.empty() && relative[0] == '/'))
    return relative;
  return dir.back() == '/' ? dir + relative : dir + "/" + relative;
}

bool isRegularFile(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string readTextFile(const std::string &path, const std::string &what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    fail(path, "", std::string("cannot open (") + std::strerror(errno) +
                       "); expected " + what);
  if (S_ISDIR(st.st_mode))
    fail(path, "", "is a directory; expected " + what);
  if (!S_ISREG(st.st_mode))
    fail(path, "", "is not a regular file; expected " + what);
  // Specs and config.json files are kilobytes: a huge file is a wrong path,
  // and reading it whole would only exhaust memory.
  constexpr off_t kMaxTextBytes = off_t(64) << 20;
  if (st.st_size > kMaxTextBytes)
    fail(path, "", "is " + std::to_string(st.st_size) + " bytes, more than the 64 MiB a spec or "
                   "config.json may have; expected " + what);
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail(path, "", std::string("cannot read (") + std::strerror(errno) +
                       "); expected " + what);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    fail(path, "", "read error; expected " + what);
  return text.str();
}

namespace {
/// Tracks object keys while nlohmann parses, to reject duplicate keys (the
/// library silently keeps the last one, which would hide a mistake).
class DuplicateKeyCheck {
public:
  explicit DuplicateKeyCheck(std::string jsonFile)
      : file(std::move(jsonFile)) {}

  bool operator()(int, Json::parse_event_t event, Json &parsed) {
    switch (event) {
    case Json::parse_event_t::object_start:
    case Json::parse_event_t::array_start:
      frames.push_back({childName(), event == Json::parse_event_t::array_start,
                        {}, ""});
      break;
    case Json::parse_event_t::object_end:
    case Json::parse_event_t::array_end:
      if (!frames.empty())
        frames.pop_back();
      break;
    case Json::parse_event_t::key: {
      Frame &f = frames.back();
      f.lastKey = parsed.get<std::string>();
      if (!f.keys.insert(f.lastKey).second)
        fail(file, pathTo(f.lastKey),
             "duplicate key; give each key once (JSON keeps only the last)");
      break;
    }
    case Json::parse_event_t::value:
      break;
    }
    return true;
  }

private:
  struct Frame {
    std::string name;
    bool isArray;
    std::set<std::string> keys;
    std::string lastKey;
  };
  std::string childName() const {
    if (frames.empty())
      return "";
    return frames.back().isArray ? "[]" : frames.back().lastKey;
  }
  std::string pathTo(const std::string &key) const {
    std::string path;
    for (size_t i = 1; i < frames.size(); ++i) {
      const std::string &n = frames[i].name;
      path += (n == "[]" || path.empty()) ? n : "." + n;
    }
    return path.empty() ? key : path + "." + key;
  }
  std::string file;
  std::vector<Frame> frames;
};
} // namespace

Json parseJsonText(const std::string &text, const std::string &file) {
  try {
    return Json::parse(text, DuplicateKeyCheck(file));
  } catch (const Json::parse_error &e) {
    // Line and column of the byte where parsing stopped (e.byte is 1-based).
    size_t stop = std::min<size_t>(e.byte ? e.byte - 1 : 0, text.size());
    size_t line = 1, column = 1;
    for (size_t i = 0; i < stop; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    // Keep nlohmann's "syntax error while parsing X - unexpected Y; expected
    // Z", which already has our "wrong; right" shape; drop its prefix.
    std::string what = e.what();
    size_t at = what.find("syntax error");
    what = at == std::string::npos ? "invalid JSON" : what.substr(at);
    throw SpecFailure{(file.empty() ? std::string("<spec>") : file) +
                      ": line " + std::to_string(line) + ", column " +
                      std::to_string(column) + ": JSON " + what};
  } catch (const Json::out_of_range &e) {
    // nlohmann throws 406 for a number past the double range (1e400) and
    // gives no position; it names the number, which we keep.
    std::string what = e.what();
    size_t at = what.find("number overflow");
    what = at == std::string::npos ? "a value is out of range" : what.substr(at);
    throw SpecFailure{(file.empty() ? std::string("<spec>") : file) + ": JSON " + what +
                      "; numbers must be within the range of a double (about 1.8e308)"};
  }
}

//===----------------------------------------------------------------------===//
// Fields
//===----------------------------------------------------------------------===//

static std::string childPath(const std::string &prefix,
                             const std::string &key) {
  return prefix.empty() ? key : prefix + "." + key;
}

Fields::Fields(std::string file, std::string prefix)
    : defaultFile(std::move(file)), objectPath(std::move(prefix)) {}

Fields::Fields(const Json &object, const std::string &file, std::string prefix)
    : defaultFile(file), objectPath(std::move(prefix)) {
  if (!object.is_object())
    fail(file, objectPath, "found " + describe(object) + "; expected an object");
  for (auto it = object.begin(); it != object.end(); ++it)
    set(it.key(), it.value(), file, childPath(objectPath, it.key()));
}

void Fields::set(const std::string &key, const Json &value,
                 const std::string &file, const std::string &path) {
  fields[key] = Field{&value, file, path};
}

std::vector<std::string> Fields::keys() const {
  std::vector<std::string> out;
  for (const auto &kv : fields)
    out.push_back(kv.first);
  return out;
}

std::string Fields::fileOf(const std::string &key) const {
  auto it = fields.find(key);
  return it == fields.end() ? defaultFile : it->second.file;
}

std::string Fields::pathOf(const std::string &key) const {
  auto it = fields.find(key);
  return it == fields.end() ? childPath(objectPath, key) : it->second.path;
}

void Fields::failAt(const std::string &key, const std::string &what) const {
  fail(fileOf(key), pathOf(key), what);
}

int64_t Fields::getInt(const std::string &key, int64_t def) const {
  if (!has(key))
    return def;
  const Json &v = valueOf(key);
  if (v.is_number_unsigned() &&
      v.get<uint64_t>() > (uint64_t)std::numeric_limits<int64_t>::max())
    failAt(key, "found " + describe(v) + ", which is too large; expected an "
                                         "integer below 2^63");
  if (!v.is_number_integer())
    failAt(key, "found " + describe(v) + "; expected an integer");
  return v.get<int64_t>();
}

int64_t Fields::requireInt(const std::string &key,
                           const std::string &requiredWhy) const {
  if (!has(key))
    failAt(key, "missing; " + requiredWhy);
  if (valueOf(key).is_null())
    failAt(key, "is null; " + requiredWhy);
  return getInt(key, 0);
}

double Fields::getDouble(const std::string &key, double def) const {
  if (!has(key))
    return def;
  const Json &v = valueOf(key);
  if (!v.is_number())
    failAt(key, "found " + describe(v) + "; expected a number");
  return v.get<double>();
}

bool Fields::getBool(const std::string &key, bool def) const {
  if (!has(key))
    return def;
  const Json &v = valueOf(key);
  if (!v.is_boolean())
    failAt(key, "found " + describe(v) + "; expected true or false");
  return v.get<bool>();
}

std::string Fields::getString(const std::string &key,
                              const std::string &def) const {
  if (!has(key))
    return def;
  const Json &v = valueOf(key);
  if (!v.is_string())
    failAt(key, "found " + describe(v) + "; expected a string");
  return v.get<std::string>();
}

std::string Fields::getChoice(const std::string &key, const std::string &def,
                              const std::vector<std::string> &allowed) const {
  std::string s = getString(key, def);
  if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
    std::string guess = closestKey(s, allowed);
    failAt(key, "'" + s + "' is not supported; expected " +
                    quotedList(allowed) +
                    (guess.empty() ? "" : " (did you mean '" + guess + "'?)"));
  }
  return s;
}

std::vector<std::string> Fields::getChoiceList(const std::string &key,
                                               const std::vector<std::string> &allowed) const {
  std::vector<std::string> out;
  if (!hasNonNull(key))
    return out;
  const Json &list = valueOf(key);
  if (!list.is_array())
    failAt(key, "found " + describe(list) + "; expected an array of " + quotedList(allowed));
  for (const Json &item : list) {
    if (!item.is_string())
      failAt(key, "found " + describe(item) + " in the array; expected " + quotedList(allowed));
    std::string s = item.get<std::string>();
    if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
      std::string guess = closestKey(s, allowed);
      failAt(key, "'" + s + "' is not supported; expected " + quotedList(allowed) +
                      (guess.empty() ? "" : " (did you mean '" + guess + "'?)"));
    }
    if (std::find(out.begin(), out.end(), s) != out.end())
      failAt(key, "'" + s + "' is listed twice");
    out.push_back(s);
  }
  return out;
}

int64_t Fields::intAtLeast(const std::string &key, int64_t def,
                           int64_t min) const {
  int64_t v = getInt(key, def);
  if (has(key) && v < min)
    failAt(key, std::to_string(v) + " is too small; expected an integer >= " +
                    std::to_string(min));
  return v;
}

double Fields::doubleAtLeast(const std::string &key, double def, double min,
                             bool strict) const {
  double v = getDouble(key, def);
  if (has(key) && (strict ? !(v > min) : !(v >= min)))
    failAt(key, formatNumber(v) + " is out of range; expected a number " +
                    (strict ? "> " : ">= ") + formatNumber(min));
  return v;
}

void Fields::rejectUnknown(const std::vector<std::string> &known) const {
  for (const auto &kv : fields)
    if (std::find(known.begin(), known.end(), kv.first) == known.end())
      failAt(kv.first, unknownKeyMessage(kv.first, known));
}

//===----------------------------------------------------------------------===//
// The spec file
//===----------------------------------------------------------------------===//

namespace {
/// Owns the parsed JSON documents that Fields point into.
struct Documents {
  Json spec;
  Json hfConfig;
};

/// The `model` section's keys, merged with its hf_config file when present:
/// keys from the file first, then the keys written next to `hf_config` in
/// the spec (overrides). Each key remembers which file it came from.
Fields modelFields(const Json &model, const std::string &specFile,
                   Documents &docs) {
  if (!model.is_object())
    fail(specFile, "model",
         "found " + describe(model) +
             "; expected an object of Hugging Face config.json keys or "
             "{\"hf_config\": \"path/to/config.json\"}");
  Fields fields(specFile, "model");
  auto hf = model.find("hf_config");
  if (hf != model.end()) {
    if (!hf->is_string() || hf->get<std::string>().empty())
      fail(specFile, "model.hf_config",
           "found " + describe(*hf) +
               "; expected the path of a Hugging Face config.json, relative "
               "to the spec's directory");
    std::string hfPath = joinPath(directoryOf(specFile), hf->get<std::string>());
    docs.hfConfig = parseJsonText(
        readTextFile(hfPath, "a Hugging Face config.json (model.hf_config in " +
                                 specFile + ")"),
        hfPath);
    if (!docs.hfConfig.is_object())
      fail(hfPath, "", "found " + describe(docs.hfConfig) +
                           "; expected a JSON object (a config.json)");
    if (docs.hfConfig.contains("hf_config"))
      fail(hfPath, "hf_config",
           "an hf_config file cannot point at another one; put the model "
           "keys here");
    for (auto it = docs.hfConfig.begin(); it != docs.hfConfig.end(); ++it)
      fields.set(it.key(), it.value(), hfPath, it.key());
  }
  for (auto it = model.begin(); it != model.end(); ++it)
    if (it.key() != "hf_config")
      fields.set(it.key(), it.value(), specFile, "model." + it.key());
  return fields;
}

} // namespace

Spec parseSpecOrThrow(const std::string &text, const std::string &path) {
  Documents docs;
  docs.spec = parseJsonText(text, path);
  if (!docs.spec.is_object())
    fail(path, "", "found " + describe(docs.spec) +
                       " at the top level; expected an object with 'model', "
                       "'train', and optionally 'parallel' and 'target'");
  const std::vector<std::string> sections = {"model", "train", "parallel",
                                             "target"};
  Fields top(docs.spec, path, "");
  top.rejectUnknown(sections);
  for (const char *required : {"model", "train"})
    if (!top.has(required))
      fail(path, required,
           std::string("missing; a spec needs the sections 'model' and "
                       "'train' (and optionally 'parallel' and 'target')"));

  Spec spec;
  spec.path = path;
  Fields model = modelFields(docs.spec["model"], path, docs);
  spec.model = parseModelFields(model, spec.ignoredModelKeys);
  spec.train = parseTrain(docs.spec["train"], path);
  if (top.has("parallel"))
    spec.parallel = parseParallel(docs.spec["parallel"], path);
  if (top.has("target"))
    spec.target = parseTarget(docs.spec["target"], path);
  // GRPO's default prompts fill the global batch, over every dp rank.
  GrpoConfig &grpo = spec.train.grpo;
  if (spec.train.stage == "grpo" && !grpo.promptsPerStepGiven)
    grpo.promptsPerStep = std::max<int64_t>(
        1, spec.parallel.globalBatchRows(spec.train.microBatch) / grpo.samplesPerPrompt);
  checkRecipe(spec, model);
  return spec;
}

} // namespace detail

std::optional<Spec> parseSpec(const std::string &jsonText,
                              const std::string &path, std::string &error) {
  try {
    return detail::parseSpecOrThrow(jsonText, path);
  } catch (const detail::SpecFailure &f) {
    error = f.message;
  } catch (const std::exception &e) {
    error = (path.empty() ? std::string("<spec>") : path) +
            ": internal error while reading the spec: " + e.what();
  } catch (...) {
    error = (path.empty() ? std::string("<spec>") : path) +
            ": internal error while reading the spec";
  }
  return std::nullopt;
}

std::optional<Spec> withBatchShape(const Spec &spec, int64_t rows, int64_t seqLen,
                                   const std::string &source, std::string &error) {
  Spec shaped = spec;
  shaped.train.microBatch = rows;
  shaped.train.seqLen = seqLen;
  try {
    if (rows < 1)
      detail::fail(source, "", "no token rows; expected at least one row");
    detail::checkSequence(source, shaped.model, shaped.train,
                          spec.path.empty() ? "" : spec.path);
    detail::checkSizes(source, shaped.model, shaped.train);
  } catch (const detail::SpecFailure &f) {
    error = f.message;
    return std::nullopt;
  }
  return shaped;
}

std::optional<Spec> loadSpec(const std::string &path, std::string &error) {
  std::string text;
  try {
    text = detail::readTextFile(path, "a JSON spec file");
  } catch (const detail::SpecFailure &f) {
    error = f.message;
    return std::nullopt;
  } catch (...) {
    error = path + ": cannot read; expected a JSON spec file";
    return std::nullopt;
  }
  return parseSpec(text, path, error);
}

std::string formatIgnoredKeysWarning(const Spec &spec) {
  if (spec.ignoredModelKeys.empty())
    return "";
  std::string line = spec.path + ": warning: model: ignoring keys that do not "
                                 "affect training: ";
  for (size_t i = 0; i < spec.ignoredModelKeys.size(); ++i)
    line += (i ? ", " : "") + spec.ignoredModelKeys[i];
  return line;
}

} // namespace kiln::frontend
