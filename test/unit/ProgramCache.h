//===- ProgramCache.h - `kilnc -o` builds shared by test processes -*- C++ -*-===//
//
// ctest runs every test case in its own process, and the cases of a suite
// need the same programs: building them again for each case was most of
// those suites' time. buildOnce(text, dir) runs `kilnc SPEC -o DIR` only
// when DIR holds no program built from this spec text after kilnc and every
// runtime library it links were last built. Processes building the same
// program at once are safe: the spec file appears whole (rename), and kilnc
// -o writes its files under temporary names and renames them into place.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_PROGRAMCACHE_H
#define KILN_TEST_UNIT_PROGRAMCACHE_H

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace kiln::test {

/// The newest of `kilnc` and the runtime libraries generated programs link.
inline std::filesystem::file_time_type newestBuildInput(const std::string &kilnc) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_time_type newest = fs::last_write_time(kilnc, ec);
  for (const auto &entry :
       fs::recursive_directory_iterator(std::string(KILN_BINARY_DIR) + "/runtime", ec))
    if (entry.path().extension() == ".a")
      newest = std::max(newest, fs::last_write_time(entry.path(), ec));
  return newest;
}

/// Makes DIR/train the program of the spec `text` (`kilnc`: the compiler's
/// path), building it unless an
/// up-to-date one is there. The spec is kept as DIR/NAME.json (NAME: DIR's
/// last component, which kilnc takes as the program's name), written only
/// after its program is in place, so that a matching spec file means a
/// finished build. "" on success, else kilnc's command and output.
inline std::string buildOnce(const std::string &kilnc, const std::string &text,
                             const std::string &dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string name = fs::path(dir).filename().string();
  const std::string spec = dir + "/" + name + ".json", exe = dir + "/train";
  auto read = [](const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  if (read(spec) == text && fs::exists(exe) &&
      fs::last_write_time(exe, ec) > newestBuildInput(kilnc))
    return "";
  const std::string pending = dir + "/.pending." + std::to_string(::getpid());
  fs::create_directories(pending, ec);
  std::ofstream(pending + "/" + name + ".json", std::ios::binary) << text;
  const std::string command = kilnc + " " + pending + "/" + name + ".json -o " + dir + " > " +
                              pending + "/kilnc.out 2>&1";
  const bool built = std::system(command.c_str()) == 0;
  const std::string output = read(pending + "/kilnc.out");
  if (built)
    fs::rename(pending + "/" + name + ".json", spec, ec);
  fs::remove_all(pending, ec);
  return built ? "" : command + " failed:\n" + output;
}

} // namespace kiln::test

#endif // KILN_TEST_UNIT_PROGRAMCACHE_H
