# The Debian packages, built by CPack (`make package`; docs/operations.md,
# "Installing the package"): two packages from one build, by install component.
#
#   saga      (component runtime) sagad, sagactl, the systemd unit, the man
#             pages and the bash completion: what a server runs;
#   saga-dev  (component dev, every install() rule that names no component)
#             the headers, the static libraries and the CMake package
#             (find_package(saga)) for building a daemon, a plugin or an
#             embedding service against saga.
#
# The libraries are static, so the runtime package needs nothing of saga-dev;
# saga-dev depends on the exact saga version (plugins are checked against
# sagad's version) and on the -dev packages its CMake package finds.
# CPACK_STRIP_FILES strips the programs (lintian: unstripped-binary-or-object)
# and, through the install(CODE) below, the debug information of the static
# libraries, as dh_strip does.

set(SAGA_PACKAGE_MAINTAINER "saga maintainers <maintainers@users.noreply.r-seed-75f13011.example>"
    CACHE STRING "the Maintainer field of the Debian packages")

# Every Debian package carries its copyright file and, a native package, its changelog.
set(doc_dir ${CMAKE_CURRENT_BINARY_DIR}/package-doc)
string(TIMESTAMP changelog_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(${CMAKE_CURRENT_LIST_DIR}/package/changelog.in ${doc_dir}/changelog @ONLY)
execute_process(COMMAND gzip -9nf ${doc_dir}/changelog RESULT_VARIABLE gzip_rc)
if(NOT gzip_rc EQUAL 0)
  message(FATAL_ERROR "cannot gzip ${doc_dir}/changelog")
endif()
foreach(pair runtime:saga dev:saga-dev)
  string(REPLACE ":" ";" pair ${pair})
  list(GET pair 0 component)
  list(GET pair 1 package)
  install(FILES ${CMAKE_CURRENT_LIST_DIR}/package/copyright ${doc_dir}/changelog.gz
          DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${package} COMPONENT ${component})
endforeach()

# Static libraries lose their debug information when the install strips (cpack).
install(CODE [[
  if(CMAKE_INSTALL_DO_STRIP)
    file(GLOB_RECURSE archives "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/*.a")
    foreach(a IN LISTS archives)
      execute_process(COMMAND strip --strip-debug ${a} COMMAND_ERROR_IS_FATAL ANY)
    endforeach()
  endif()
]] COMPONENT dev)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME saga)
set(CPACK_PACKAGE_VENDOR "saga")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${SAGA_PACKAGE_MAINTAINER})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# DESTDIR staging with the prefix /usr, whatever this build was configured with: the
# install scripts see CMAKE_INSTALL_PREFIX=/usr (the unit's ExecStart).
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${SAGA_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends computed by dpkg-shlibdeps from the ELF files (sagad, sagactl); saga-dev has none.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME saga)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
# CPack indents the extended description itself; the synopsis may not begin with the package's name.
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
    "orchestration daemon for sagas driven by CloudEvents over ZeroMQ
sagad runs long-lived business processes (sagas) as state machines that move
one step for each CloudEvents message another service sends over ZeroMQ; each
event's effect commits in one SQLite transaction before it is acknowledged.
sagactl shows and operates the sagas of a database. With a hardened systemd
unit, man pages and bash completion.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME saga-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "saga (= ${PROJECT_VERSION}), libboost1.81-dev, nlohmann-json3-dev, libfmt-dev, libsimdjson-dev, libsqlitecpp-dev, \
libsqlite3-dev, cppzmq-dev, libspdlog-dev, libpq-dev")
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "development files of the saga orchestration engine
The engine, its SQLite store, the ZeroMQ wire protocol, the daemon's loop as a
library and the shipped workflows, with find_package(saga) targets: for
writing workflows, sagad plugins, daemons of one's own and services that embed
the engine. Headers, static libraries and the CMake package.")

include(CPack)
