// The management calls (fltmgr/manager): FilterLoad/Unload, the four enumerations, attach/detach, DOS names and
// the simulator's port list, each on the addon's BlockingCalls executor (blocking_calls.h), resolving a Promise.
#pragma once
#include <napi.h>

namespace fltmgr {

// manage(op, { backend, endpoint? }, ...args) -> Promise<{ hresult, syscall, records?, value?, detail? }>
// (lib/binding.ts NativeManage). Throws a TypeError for arguments lib/manager.ts never passes.
Napi::Value Manage(const Napi::CallbackInfo& info);

}  // namespace fltmgr
