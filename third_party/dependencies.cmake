# System libraries (Debian 12: libuv1-dev, nlohmann-json3-dev, doctest-dev).
# platform/linux/install-deps installs them; a missing one stops configuration with its
# package name instead of a compiler error three screens later.
find_package(PkgConfig QUIET)

function(tunsocks_require_package what debian_package)
  message(FATAL_ERROR
    "tunsocks: ${what} not found. On Debian/Ubuntu: apt-get install ${debian_package} "
    "(or run platform/linux/install-deps as root).")
endfunction()

if(NOT TUNSOCKS_FUZZ)
  if(PkgConfig_FOUND)
    pkg_check_modules(LIBUV QUIET IMPORTED_TARGET GLOBAL libuv)
  endif()
  if(NOT LIBUV_FOUND)
    tunsocks_require_package("libuv (pkg-config libuv)" libuv1-dev)
  endif()
  # Debian's libuv1-dev also ships the static archive (libuv_a.a): linked in, the programs
  # map one shared object fewer and touch only the libuv code they call.
  find_library(TUNSOCKS_LIBUV_STATIC NAMES uv_a libuv_a.a HINTS ${LIBUV_LIBRARY_DIRS})
  if(TUNSOCKS_LIBUV_STATIC)
    add_library(tunsocks_uv_static INTERFACE)
    target_include_directories(tunsocks_uv_static INTERFACE ${LIBUV_INCLUDE_DIRS})
    target_link_libraries(tunsocks_uv_static INTERFACE ${TUNSOCKS_LIBUV_STATIC} pthread dl rt)
    add_library(tunsocks::uv ALIAS tunsocks_uv_static)
  else()
    add_library(tunsocks::uv ALIAS PkgConfig::LIBUV)
  endif()

  find_package(nlohmann_json 3.10 QUIET)
  if(NOT nlohmann_json_FOUND)
    tunsocks_require_package("nlohmann/json >= 3.10" nlohmann-json3-dev)
  endif()
endif()

find_package(doctest QUIET)
if(NOT doctest_FOUND)
  if(TUNSOCKS_FUZZ)
    set(TUNSOCKS_HAVE_DOCTEST OFF)
  else()
    tunsocks_require_package("doctest" doctest-dev)
  endif()
endif()
