// Peer credentials of a connected Unix socket, for the simulator's port security checks (the simulator
// plays Filter Manager, which checks the caller's token against the port's security descriptor).
#include <napi.h>

#if defined(__linux__)
#include <sys/socket.h>
#include <sys/types.h>
#elif defined(__APPLE__)
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#endif

#include "addon.h"

namespace fltmgr {

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(env, "peerCredentials(fd): fd must be a number");
  }
#if defined(__linux__)
  const int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return env.Undefined();
  Napi::Object result = Napi::Object::New(env);
  result.Set("uid", Napi::Number::New(env, cred.uid));
  result.Set("gid", Napi::Number::New(env, cred.gid));
  result.Set("pid", Napi::Number::New(env, cred.pid));
  return result;
#elif defined(__APPLE__)
  const int fd = info[0].As<Napi::Number>().Int32Value();
  uid_t uid = 0;
  gid_t gid = 0;
  if (getpeereid(fd, &uid, &gid) != 0) return env.Undefined();
  Napi::Object result = Napi::Object::New(env);
  result.Set("uid", Napi::Number::New(env, uid));
  result.Set("gid", Napi::Number::New(env, gid));
  pid_t pid = 0;
  socklen_t len = sizeof(pid);
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0) result.Set("pid", Napi::Number::New(env, pid));
  return result;
#else
  return env.Undefined();
#endif
}

}  // namespace fltmgr
