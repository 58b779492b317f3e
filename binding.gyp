# node-gyp build of the fltmgr addon. CMakeLists.txt (cmake-js, used for the mingw-w64 cross build) lists
# the same sources; test/build-files.test.ts fails if the two lists differ.
{
  "variables": {
    # FLTMGR_SANITIZE=1 builds with AddressSanitizer + UBSan (Linux/macOS; see scripts/asan.js).
    "fltmgr_sanitize%": "<!(node -p \"process.env.FLTMGR_SANITIZE === '1' ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "fltmgr",
      "sources": [
        "native/src/addon.cc",
        "native/src/blocking_calls.cc",
        "native/src/hresult.cc",
        "native/src/fltapi.cc",
        "native/src/port.cc",
        "native/src/receive_loop.cc",
        "native/src/receive_loop_napi.cc",
        "native/src/send_pool.cc",
        "native/src/peercred.cc",
        "native/src/manage.cc",
        "native/src/manage_records.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='win'", {
          "sources": [
            "native/compat/compat_kernel32.cc",
            "native/compat/compat_fltlib.cc",
            "native/compat/compat_manage.cc",
            "native/src/kernel_bridge.cc",
            "native/sim/manage.cc",
            "native/sim/session.cc",
            "native/sim/wire.cc"
          ],
          "libraries": ["-lpthread", "-ldl"]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
          }
        }],
        ["OS=='win'", {
          "sources": [
            "native/sim/manage.cc",
            "native/sim/session.cc",
            "native/sim/wire.cc",
            "native/win/sim_fltlib.cc",
            "native/win/sim_manage.cc"
          ],
          "libraries": ["fltlib.lib", "ws2_32.lib"],
          "defines": ["UNICODE", "_UNICODE", "WIN32_LEAN_AND_MEAN", "NOMINMAX"],
          "msvs_settings": {
            "VCCLCompilerTool": {
              "ExceptionHandling": 1,
              "WarningLevel": 4,
              "WarnAsError": "true",
              "AdditionalOptions": ["/std:c++17", "/guard:cf", "/sdl", "/Qspectre", "/ZH:SHA_256", "/we4244", "/we4267", "/utf-8"]
            },
            "VCLinkerTool": {
              "AdditionalOptions": ["/guard:cf", "/DYNAMICBASE", "/CETCOMPAT"]
            }
          }
        }],
        ["fltmgr_sanitize==1", {
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address,undefined"],
          "xcode_settings": {
            "OTHER_CPLUSPLUSFLAGS": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"],
            "OTHER_LDFLAGS": ["-fsanitize=address,undefined"]
          }
        }]
      ]
    }
  ]
}
