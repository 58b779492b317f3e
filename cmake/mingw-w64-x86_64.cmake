# Cross toolchain: Linux host -> Windows x64 with mingw-w64, POSIX thread model (std::thread, std::mutex).
# Debian/Ubuntu: apt-get install g++-mingw-w64-x86-64-posix mingw-w64-x86-64-dev
# Used by scripts/build-win.js (cmake-js ... --CDCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake); the
# win32-ia32 twin is mingw-w64-i686.cmake.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)

set(FLTMGR_MINGW_TRIPLE x86_64-w64-mingw32)
find_program(CMAKE_C_COMPILER NAMES ${FLTMGR_MINGW_TRIPLE}-gcc-posix REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${FLTMGR_MINGW_TRIPLE}-g++-posix REQUIRED)
find_program(CMAKE_RC_COMPILER NAMES ${FLTMGR_MINGW_TRIPLE}-windres)
find_program(FLTMGR_DLLTOOL NAMES ${FLTMGR_MINGW_TRIPLE}-dlltool REQUIRED)
# dlltool's machine for the Node-API delay-import library (CMakeLists.txt).
set(FLTMGR_DLLTOOL_MACHINE i386:x86-64)

set(CMAKE_FIND_ROOT_PATH /usr/${FLTMGR_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
