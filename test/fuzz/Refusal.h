//===- Refusal.h - what every harness demands of a parser's refusal -------===//
//
// Bad input is refused with one non-empty line that says what is wrong. An
// "internal error" (the catch-alls around the parsers, for exceptions their
// checks did not turn into a message) is a finding: the input needs a real
// message, or the path is unreachable and the fuzzers keep showing it.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_FUZZ_REFUSAL_H
#define KILN_TEST_FUZZ_REFUSAL_H

#include <cstdio>
#include <cstdlib>
#include <string>

namespace kiln::fuzz {

/// True for the binary readers' catch-all messages: "<file>: internal
/// error ...", "<file>: unknown internal error ..." and "... tensor 'x':
/// unknown internal error"; their other messages quote the user's strings
/// only after fixed words. (The spec harness checks for escaping exceptions
/// instead: a spec's field path comes right after the file name.)
inline bool isCatchAll(const std::string &error) {
  auto startsAt = [&](size_t pos, const char *text) {
    return error.compare(pos, std::char_traits<char>::length(text), text) == 0;
  };
  const size_t afterName = error.find(": ");
  const char *kTail = ": unknown internal error";
  const size_t tail = std::char_traits<char>::length(kTail);
  return (afterName != std::string::npos && (startsAt(afterName + 2, "internal error") ||
                                              startsAt(afterName + 2, "unknown internal error"))) ||
         (error.size() >= tail && startsAt(error.size() - tail, kTail));
}

/// A refusal's message is one non-empty line.
inline void checkOneLine(const std::string &error) {
  if (!error.empty() && error.find('\n') == std::string::npos)
    return;
  std::fprintf(stderr, "bad refusal: '%s'\n", error.c_str());
  std::abort();
}

/// One line, and not a catch-all.
inline void checkRefusal(const std::string &error) {
  checkOneLine(error);
  if (!isCatchAll(error))
    return;
  std::fprintf(stderr, "refused through a catch-all: '%s'\n", error.c_str());
  std::abort();
}

} // namespace kiln::fuzz

#endif // KILN_TEST_FUZZ_REFUSAL_H
