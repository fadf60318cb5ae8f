//===- OneLine.h - keep a message that quotes a user's file on one line ---===//
//
// Errors are one line, and many quote what a file contains (a key, a tensor
// name, the text of a `latest` file). A control character there (a JSON
// "\n" in a key, a stray newline in a file) would break the line, so quoted
// text goes through oneLine(), which writes each control character as \xNN.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_IO_ONELINE_H
#define KILN_RUNTIME_IO_ONELINE_H

#include <cstdio>
#include <string>
#include <string_view>

namespace kiln::io {

inline std::string oneLine(std::string_view text) {
  std::string line;
  line.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c != 0x7f) {
      line += char(c);
      continue;
    }
    char escaped[8];
    std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
    line += escaped;
  }
  return line;
}

} // namespace kiln::io

#endif // KILN_RUNTIME_IO_ONELINE_H
