# daemon_library_tests: saga::server (sagad's loop) run in-process on a thread,
# with a fault-injecting store wrapper (tests/daemon/daemon_library_test.cpp).
# include()d from adapters/daemon/CMakeLists.txt (after saga::server exists);
# tests/CMakeLists.txt is processed later, so this file brings its own doctest
# main and enables testing for its directory.
if(NOT TARGET doctest::doctest)
  find_package(doctest REQUIRED CONFIG)
endif()
include(doctest)
enable_testing()

add_executable(daemon_library_tests
  ${CMAKE_CURRENT_LIST_DIR}/daemon_library_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/log_syncer_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/../support/doctest_main.cpp)
# log_syncer_test reaches one of sagad's own parts (adapters/server/src/log_syncer.hpp).
target_include_directories(daemon_library_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/..
                           ${PROJECT_SOURCE_DIR}/adapters/server/src)
target_link_libraries(daemon_library_tests PRIVATE doctest::doctest saga::server saga::definitions SQLiteCpp)
saga_warnings(daemon_library_tests)
doctest_discover_tests(daemon_library_tests
  TEST_PREFIX "daemon_library."
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
  PROPERTIES TIMEOUT 120)
