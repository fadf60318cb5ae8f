//===- SpecJson.h - private helpers shared by the spec parser ------------===//
//
// Not a public header: only Spec.cpp, SpecModel.cpp and SpecRecipe.cpp
// include it. It wraps nlohmann-json with the one thing the spec parser needs
// everywhere: typed access to an object's keys where every failure becomes a
// one-line message "<file>: <field>: <what is wrong>; <what would be right>".
//
// Failures are thrown as SpecFailure inside the parser and caught once, in
// parseSpec(); nothing escapes the public functions.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_FRONTEND_SPECJSON_H
#define KILN_FRONTEND_SPECJSON_H

#include "frontend/Spec.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln::frontend::detail {

using Json = nlohmann::json;

/// The one exception type of the parser; `message` is the finished line.
struct SpecFailure {
  std::string message;
};

/// parseSpec() without its catch-alls: refusals throw SpecFailure, and
/// anything else that escapes is a bug (fuzz_spec calls this to find them).
Spec parseSpecOrThrow(const std::string &text, const std::string &path);

[[noreturn]] void fail(const std::string &file, const std::string &field,
                       const std::string &what);

/// "integer 3", "float 0.5", "string \"x\"", "true", "null", "an array", ...
std::string describe(const Json &value);

/// Formats a double the shortest way that reads back the same ("0.001", "40").
std::string formatNumber(double value);

/// The candidate closest to `key` by edit distance (case-insensitive), or ""
/// when none is close enough to be a plausible typo.
std::string closestKey(const std::string &key,
                       const std::vector<std::string> &candidates);

/// "unknown key; did you mean 'optimizer'?" or "unknown key; expected one of
/// a, b, c" (the list only when it is short).
std::string unknownKeyMessage(const std::string &key,
                              const std::vector<std::string> &candidates);

/// Parses JSON text; syntax errors (with line and column) and duplicate keys
/// (with their path) fail with `file` named.
Json parseJsonText(const std::string &text, const std::string &file);

/// Reads a whole file, or fails naming it: missing, a directory, unreadable.
/// `what` says what the file should have been ("a JSON spec file").
std::string readTextFile(const std::string &path, const std::string &what);

/// The directory part of a path ("models/x.json" -> "models", "x.json" -> "").
std::string directoryOf(const std::string &path);
/// `relative` resolved against `dir` (unchanged when absolute or dir empty).
std::string joinPath(const std::string &dir, const std::string &relative);
bool isRegularFile(const std::string &path);

/// One key of a JSON object together with where it came from, so that a
/// message names the file the user has to edit.
struct Field {
  const Json *value = nullptr;
  std::string file; // the file that holds it
  std::string path; // its field path inside that file ("train.seq_len")
};

/// Typed, validated access to the keys of one JSON object (or of several
/// merged ones, for `model` + `hf_config`). Getters fail with a message that
/// names the field and what type/range was expected.
class Fields {
public:
  /// `prefix` is the field path of the object itself ("train", "model"; ""
  /// for the top level of an hf_config file).
  Fields(std::string file, std::string prefix);
  /// All members of `object` (which must be an object), from `file`.
  Fields(const Json &object, const std::string &file, std::string prefix);

  void set(const std::string &key, const Json &value, const std::string &file,
           const std::string &path);
  void erase(const std::string &key) { fields.erase(key); }

  bool has(const std::string &key) const { return fields.count(key) != 0; }
  bool hasNonNull(const std::string &key) const {
    return has(key) && !fields.at(key).value->is_null();
  }
  const Field &at(const std::string &key) const { return fields.at(key); }
  std::vector<std::string> keys() const;

  /// The file and field path a message about `key` should name (its own
  /// file when present, else the object's).
  std::string fileOf(const std::string &key) const;
  std::string pathOf(const std::string &key) const;
  [[noreturn]] void failAt(const std::string &key,
                           const std::string &what) const;

  // Typed getters: `def` when the key is absent (the `opt*` forms also
  // treat null as absent). `require*` fail when absent, saying `requiredWhy`.
  int64_t getInt(const std::string &key, int64_t def) const;
  int64_t requireInt(const std::string &key,
                     const std::string &requiredWhy) const;
  double getDouble(const std::string &key, double def) const;
  bool getBool(const std::string &key, bool def) const;
  std::string getString(const std::string &key, const std::string &def) const;
  /// A string that must be one of `allowed`.
  std::string getChoice(const std::string &key, const std::string &def,
                        const std::vector<std::string> &allowed) const;
  /// An array of distinct strings, each one of `allowed` (empty when absent).
  std::vector<std::string> getChoiceList(const std::string &key,
                                         const std::vector<std::string> &allowed) const;
  /// Checks a present key's integer/double value against bounds.
  int64_t intAtLeast(const std::string &key, int64_t def, int64_t min) const;
  double doubleAtLeast(const std::string &key, double def, double min,
                       bool strict) const;

  /// Fails on the first key not in `known` (with a suggestion).
  void rejectUnknown(const std::vector<std::string> &known) const;

  const std::string &file() const { return defaultFile; }
  const std::string &prefix() const { return objectPath; }

private:
  const Json &valueOf(const std::string &key) const {
    return *fields.at(key).value;
  }
  std::map<std::string, Field> fields;
  std::string defaultFile;
  std::string objectPath;
};

/// "a or b or c" / "'a', 'b' or 'c'" for messages.
std::string quotedList(const std::vector<std::string> &items);

// Section parsers (SpecModel.cpp, SpecRecipe.cpp). Each fills its struct or
// fails; cross-section checks come last, in checkRecipe().
ModelConfig parseModelFields(const Fields &model,
                             std::vector<std::string> &ignoredKeys);
TrainConfig parseTrain(const Json &train, const std::string &file);
ParallelConfig parseParallel(const Json &parallel, const std::string &file);
TargetConfig parseTarget(const Json &target, const std::string &file);
/// Checks that need more than one section (seq_len vs the model, ep vs
/// experts, pp vs layers, fp8 vs the GPU).
void checkRecipe(const Spec &spec, const Fields &model);
/// The checks of train.seq_len against the model (checkRecipe's), and of
/// sizes no target can hold; `file` names where the shape came from.
void checkSequence(const std::string &file, const ModelConfig &m, const TrainConfig &t,
                   const std::string &limitFile);
void checkSizes(const std::string &file, const ModelConfig &m, const TrainConfig &t);

} // namespace kiln::frontend::detail

#endif // KILN_FRONTEND_SPECJSON_H
