# cmake -P script, the package test (tests/package/CMakeLists.txt): what an
# operator gets from `make package`.
#
#   1. cpack builds saga_<version>_<arch>.deb and saga-dev_<version>_<arch>.deb
#      from this build (into WORK_DIR, not the build tree's own package folder);
#   2. both are unpacked (dpkg-deb -x, no root needed) into a throw-away root;
#      the programs there are exactly sagad and sagactl, and they run: sagad
#      --version says the build's version and revision, sagactl --help lists
#      its subcommands;
#   3. the man pages, the bash completion, the systemd unit (ExecStart the
#      packaged sagad, systemd-analyze verify silent on it, its hardening
#      under systemd-analyze security's threshold), the
#      CMake package and the computed dependencies are there;
#   4. lintian reports no error (E:) on either package.
#
# Inputs (-D): BUILD_DIR, WORK_DIR, CPACK, DPKG_DEB, LINTIAN, SYSTEMD_ANALYZE,
# VERSION, BUILT_SAGAD, COMPLETION.
foreach(tool CPACK DPKG_DEB LINTIAN SYSTEMD_ANALYZE)
  if(NOT ${tool})
    message(FATAL_ERROR "package test: ${tool} not found (scripts/install-deps.sh installs it)")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
set(root ${WORK_DIR}/root)
string(TIMESTAMP started "%s")

function(fail)
  string(JOIN "" what ${ARGN})
  message(FATAL_ERROR "package test: ${what}")
endfunction()

set(STEP_TEST "package test")
include(${CMAKE_CURRENT_LIST_DIR}/../support/script_step.cmake)

# 1. the packages
step("cpack" ${CPACK} --config ${BUILD_DIR}/CPackConfig.cmake -B ${WORK_DIR}/out)
step("dpkg --print-architecture" dpkg --print-architecture)
string(STRIP "${step_out}" arch)
set(runtime_deb ${WORK_DIR}/out/saga_${VERSION}_${arch}.deb)
set(dev_deb ${WORK_DIR}/out/saga-dev_${VERSION}_${arch}.deb)
file(GLOB debs ${WORK_DIR}/out/*.deb)
list(SORT debs)
if(NOT debs STREQUAL "${dev_deb};${runtime_deb}")
  fail("cpack made ${debs}, not saga_${VERSION}_${arch}.deb and saga-dev_${VERSION}_${arch}.deb")
endif()

# 2. unpacked, the programs run
foreach(deb ${runtime_deb} ${dev_deb})
  step("dpkg-deb -x ${deb}" ${DPKG_DEB} -x ${deb} ${root})
endforeach()
file(GLOB programs RELATIVE ${root} ${root}/usr/bin/*)
list(SORT programs)
if(NOT programs STREQUAL "usr/bin/sagactl;usr/bin/sagad")
  fail("the packages hold the programs ${programs}, not exactly sagad and sagactl (test builds leaked?)")
endif()
step("sagad --version of this build" ${BUILT_SAGAD} --version)
set(built_version "${step_out}")
step("the packaged sagad --version" ${root}/usr/bin/sagad --version)
if(NOT step_out MATCHES "^sagad ${VERSION} \\(revision [^)\n]+\\)\n$")
  fail("the packaged sagad --version printed '${step_out}'")
endif()
if(NOT step_out STREQUAL built_version)
  fail("the packaged sagad is not this build's: '${step_out}' against '${built_version}'")
endif()
step("the packaged sagactl --help" ${root}/usr/bin/sagactl --help)
if(NOT step_out MATCHES "Subcommands:.*dead-letters")
  fail("the packaged sagactl --help lists no subcommands:\n${step_out}")
endif()

# 3. what comes with them
foreach(page sagad sagactl)
  set(gz ${root}/usr/share/man/man1/${page}.1.gz)
  if(NOT EXISTS ${gz})
    fail("no man page ${page}(1)")
  endif()
  step("gunzip ${page}.1.gz" gzip -dc ${gz})
  # help2man's OPTIONS from --help, and the hand-written sections of the include file.
  foreach(section "SH OPTIONS" "SH ENVIRONMENT" "SH FILES" "SH \"EXIT STATUS\"" "SH \"SEE ALSO\"" "SAGA_DB"
                  "\\-\\-version")
    string(FIND "${step_out}" "${section}" at)
    if(at EQUAL -1)
      fail("${page}.1 has no ${section}")
    endif()
  endforeach()
endforeach()
step("gunzip sagad.1.gz" gzip -dc ${root}/usr/share/man/man1/sagad.1.gz)
if(NOT step_out MATCHES "SH SIGNALS.*SIGHUP" OR NOT step_out MATCHES "endpoints\\\\-file")
  fail("sagad.1 lacks SIGNALS (SIGHUP) or the options of sagad --help")
endif()

set(completion ${root}/usr/share/bash-completion/completions/sagactl)
if(NOT EXISTS ${completion})
  fail("no bash completion for sagactl")
endif()
file(SHA256 ${completion} packaged)
file(SHA256 ${COMPLETION} source)
if(NOT packaged STREQUAL source)
  fail("the packaged completion is not ${COMPLETION}")
endif()

set(unit ${root}/usr/lib/systemd/system/sagad.service)
if(NOT EXISTS ${unit})
  fail("no systemd unit at /usr/lib/systemd/system/sagad.service")
endif()
file(STRINGS ${unit} exec_start REGEX "^ExecStart=")
if(NOT exec_start STREQUAL "ExecStart=/usr/bin/sagad")
  fail("the unit's ${exec_start} is not the packaged sagad")
endif()
# systemd-analyze verify on a copy whose ExecStart is the unpacked sagad: it says nothing about a
# unit it fully understands, and names an unknown key or a bad value (exit 0 even then).
file(READ ${unit} unit_text)
string(REPLACE "ExecStart=/usr/bin/sagad" "ExecStart=${root}/usr/bin/sagad" unit_text "${unit_text}")
file(WRITE ${WORK_DIR}/verify/sagad.service "${unit_text}")
execute_process(COMMAND ${SYSTEMD_ANALYZE} verify --man=no ${WORK_DIR}/verify/sagad.service
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT "${out}${err}" STREQUAL "")
  fail("systemd-analyze verify (${rc}) has something to say about the unit:\n${out}${err}")
endif()
message(STATUS "systemd-analyze verify: ok")
# docs/operations.md gives the score (1.2); a change that weakens the hardening fails here.
step("systemd-analyze security --threshold=12" ${SYSTEMD_ANALYZE} security --offline=yes --threshold=12 ${unit})

file(GLOB_RECURSE cmake_config ${root}/usr/lib*/saga-config.cmake)
file(GLOB_RECURSE engine_header ${root}/usr/include/saga/engine.hpp)
if(NOT cmake_config OR NOT engine_header)
  fail("saga-dev holds no CMake package or no headers")
endif()

step("the runtime package's control fields" ${DPKG_DEB} -f ${runtime_deb} Package Version Depends Section)
if(NOT step_out MATCHES "Package: saga\n" OR NOT step_out MATCHES "Version: ${VERSION}\n"
   OR NOT step_out MATCHES "Depends: [^\n]*libc6" OR NOT step_out MATCHES "Depends: [^\n]*libzmq5")
  fail("the runtime package's control fields lack the computed dependencies:\n${step_out}")
endif()
step("the dev package's control fields" ${DPKG_DEB} -f ${dev_deb} Depends)
if(NOT step_out MATCHES "saga \\(= ${VERSION}\\)")
  fail("saga-dev does not depend on saga (= ${VERSION}):\n${step_out}")
endif()

# 4. lintian: no error. Warnings and the rest are printed for the reader.
execute_process(COMMAND ${LINTIAN} --no-cfg ${runtime_deb} ${dev_deb}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "lintian (exit ${rc}):\n${out}${err}")
if(out MATCHES "(^|\n)E: ")
  fail("lintian reports errors (E:) on the packages")
endif()
if(NOT rc EQUAL 0)
  fail("lintian failed (${rc}) without an error tag:\n${err}")
endif()

string(TIMESTAMP finished "%s")
math(EXPR secs "${finished} - ${started}")
message(STATUS "package test: everything held (${secs} s)")
