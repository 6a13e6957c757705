# saga-torture: the crash torture of issue 7, section 1 (tests/reliability/torture.cpp).
# Included by the lead's CMake (any directory): every path here is relative to
# this file (CMAKE_CURRENT_LIST_DIR), not to the including directory.
find_package(CLI11 REQUIRED CONFIG)

add_executable(saga-torture ${CMAKE_CURRENT_LIST_DIR}/torture.cpp)
# tests/ for support/process.hpp.
target_include_directories(saga-torture PRIVATE ${CMAKE_CURRENT_LIST_DIR}/..)
target_link_libraries(saga-torture PRIVATE saga::engine saga::zmq saga::sqlite SQLiteCpp CLI11::CLI11)
target_compile_features(saga-torture PRIVATE cxx_std_20)
if(COMMAND saga_warnings)
  saga_warnings(saga-torture)
endif()
add_dependencies(saga-torture sagad-test)
target_compile_definitions(saga-torture PRIVATE SAGAD_PATH="$<TARGET_FILE:sagad-test>")
# One place whatever directory includes this file: <build>/tests/reliability/saga-torture.
set_target_properties(saga-torture PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/reliability)

# The full run (issue 7: 15,000 sagas, >= 1,000 counted kills, >= 20 hits per
# fault point): `cmake --build <build> --target saga-torture-full` (`make torture`).
add_custom_target(saga-torture-full
  COMMAND saga-torture --sagas 15000 --kills 1000 --fault-kills 20
          --report ${CMAKE_BINARY_DIR}/torture-full.json
  DEPENDS saga-torture
  USES_TERMINAL)

# The short run joins `make test` (about 1,500 sagas, >= 20 counted kills,
# >= 3 hits per fault point; under ~150 s on 2 cores).
add_test(NAME reliability.crash_torture_short
         COMMAND saga-torture --short --report ${CMAKE_CURRENT_BINARY_DIR}/torture-short.json)
set_tests_properties(reliability.crash_torture_short PROPERTIES TIMEOUT 240 RUN_SERIAL TRUE)
