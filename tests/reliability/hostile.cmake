# tests/reliability: hostile input and readers under load against a real
# sagad (issue 7, sections 4 and 5). include()d from tests/CMakeLists.txt;
# works as well from any project that has added the saga tree (it then
# defines saga_test_main and finds doctest itself).
set(_saga_rel_dir "${CMAKE_CURRENT_LIST_DIR}")
get_filename_component(_saga_tests_dir "${_saga_rel_dir}/.." ABSOLUTE)

if(NOT TARGET doctest::doctest)
  find_package(doctest REQUIRED CONFIG)
endif()
if(NOT COMMAND doctest_discover_tests)
  include(doctest)
endif()
if(NOT TARGET saga_test_main)
  add_library(saga_test_main OBJECT ${_saga_tests_dir}/support/doctest_main.cpp)
  target_link_libraries(saga_test_main PUBLIC doctest::doctest)
endif()
enable_testing()

function(saga_reliability_test name source)
  add_executable(${name} ${_saga_rel_dir}/${source} $<TARGET_OBJECTS:saga_test_main>)
  target_compile_features(${name} PRIVATE cxx_std_20)
  target_include_directories(${name} PRIVATE ${_saga_tests_dir})
  # saga::zmq brings nlohmann_json and cppzmq (imported targets are not visible
  # from every directory).
  target_link_libraries(${name} PRIVATE doctest::doctest saga::zmq saga::sqlite)
  if(COMMAND saga_warnings)
    saga_warnings(${name})
  endif()
  add_dependencies(${name} sagad sagactl)
  target_compile_definitions(${name} PRIVATE
    SAGAD_PATH="$<TARGET_FILE:sagad>"
    SAGACTL_PATH="$<TARGET_FILE:sagactl>")
  # sagad-test (adapters/daemon, with the hostile definitions of tests/support): the tests of
  # definitions that throw run only where it is built.
  if(TARGET sagad-test)
    add_dependencies(${name} sagad-test)
    target_compile_definitions(${name} PRIVATE SAGAD_TEST_PATH="$<TARGET_FILE:sagad-test>")
  endif()
  doctest_discover_tests(${name}
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
    PROPERTIES LABELS reliability TIMEOUT 600)
endfunction()

saga_reliability_test(hostile_input_tests hostile_input_test.cpp)
saga_reliability_test(readers_under_load_tests readers_under_load_test.cpp)
saga_reliability_test(service_manager_tests service_manager_test.cpp)
saga_reliability_test(log_sync_tests log_sync_test.cpp)
# --metrics: scraped under load, parsed by Prometheus' own parser (python3-prometheus-client).
saga_reliability_test(metrics_tests metrics_test.cpp)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SAGA_TEST_HTTPLIB REQUIRED cpp-httplib)
target_link_libraries(metrics_tests PRIVATE cpp-httplib)
target_compile_options(metrics_tests PRIVATE ${SAGA_TEST_HTTPLIB_CFLAGS_OTHER})
find_program(SAGA_TEST_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
target_compile_definitions(metrics_tests PRIVATE SAGA_SYSTEM_PYTHON="${SAGA_TEST_SYSTEM_PYTHON}")
