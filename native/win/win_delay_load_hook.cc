// Delay-load hook for the mingw-w64 build (CMakeLists.txt): lets the addon load in a host executable that
// is not named node.exe (Electron, a renamed node.exe).
//
// The addon imports the Node-API functions from "NODE.EXE" through a delay-import library made from
// node-api-headers' node_api.def with `dlltool -y`. On the first call, mingw-w64's __delayLoadHelper2
// (libmingwex, delayimp.c) calls __pfnDliNotifyHook2 with dliNotePreLoadLibrary before LoadLibrary; this hook
// answers with the running executable, which exports Node-API whatever its name. mingw-w64 declares the hook
// variable non-const (delayimp.h) and defines a null default in its own object (delay-n.o), which the
// linker leaves out because this definition comes first.
//
// node-gyp's MSVC build (binding.gyp) uses node-gyp's own hook (win_delay_load_hook.cc in node-gyp), so this
// file is listed in CMakeLists.txt only (test/build-files.test.ts knows this exception).
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <delayimp.h>

#include <cstring>

namespace {

FARPROC WINAPI LoadExeHook(unsigned event, PDelayLoadInfo info) {
  if (event != dliNotePreLoadLibrary || info == nullptr || info->szDll == nullptr) return nullptr;
  if (_stricmp(info->szDll, "node.exe") != 0) return nullptr;
  return reinterpret_cast<FARPROC>(GetModuleHandleW(nullptr));
}

}  // namespace

extern "C" {
PfnDliHook __pfnDliNotifyHook2 = LoadExeHook;
}
