// kh-test-sources: core.cc
// The harness core: callers per thread, violations recorded and counted.
#include <cassert>
#include <cstdio>
#include <thread>

#include "core.h"
#include "harness.h"

int main() {
  assert(kh::CurrentCaller().system && kh::CurrentCaller().processId == 4);
  {
    kh::Caller c;
    c.processId = 1234;
    c.system = false;
    c.admin = false;
    kh::ScopedCaller scope(c);
    assert(kh::CurrentCaller().processId == 1234);
    std::thread([] { assert(kh::CurrentCaller().processId == 4); }).join();
  }
  assert(kh::CurrentCaller().processId == 4);
  kh::Violation("FltTest", "reason %d", 7);
  assert(kh::Violations().size() == 1 && kh::Violations()[0] == "FltTest: reason 7");
  std::puts("core_test: ok");
  return 0;
}
